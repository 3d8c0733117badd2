"""Test stand-in for the `openrlhf` package (see cli/train_ppo_ray.py)."""
