"""The verifier types, one module each, registered by `verifier.type` in the `verifier` registry."""
