"""The client side of ONVIF: WS-Discovery, device/media interrogation, event parsing.

Public entry points: :func:`onvif_bridge.discovery.discover` (async iterator of
:class:`~onvif_bridge.models.DiscoveredDevice`), :func:`onvif_bridge.client.interrogate`
(→ :class:`~onvif_bridge.models.DeviceReport`), :class:`onvif_bridge.client.OnvifClient` for
changes (clock, NTP, encoder, hostname, reboot), :func:`onvif_bridge.parsers.parse_response` for
raw SOAP answers. Errors are :class:`onvif_bridge.errors.OnvifError` subclasses. Only ``vms`` core
is imported; nothing is shared with ``camsim``.
"""
