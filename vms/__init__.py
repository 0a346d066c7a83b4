"""vms package."""
