"""One module per benchmark; each registers its loader with `m2rl.evaluate.registry.register_benchmark`."""
