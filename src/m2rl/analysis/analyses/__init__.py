"""The analyses, one module each, registered by name in the `analysis` registry (`m2rl list analysis`)."""
