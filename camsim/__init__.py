"""camsim package."""
