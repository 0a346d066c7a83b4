"""The ONVIF device side of a virtual camera: SOAP framing, WS-Security and the services.

``soap`` owns the envelope, faults and dispatch; ``wsse`` checks UsernameTokens against the
camera's own clock; ``state`` holds what a camera knows about itself; ``device``, ``media``,
``ptz``, ``events`` and ``deviceio`` render one ONVIF service each. Nothing here is shared with
``onvif_bridge`` (our client side) on purpose: a misreading of ONVIF on one side must not hide
behind the same misreading on the other.
"""
