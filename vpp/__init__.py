"""Community energy & VPP control service (service core)."""
