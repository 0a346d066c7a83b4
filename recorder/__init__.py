"""recorder package."""
