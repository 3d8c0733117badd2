"""The environment kinds, one module each, registered by name in the `environment` registry."""
