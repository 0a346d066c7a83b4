"""onvif_bridge package."""
