"""Merge methods, one file each; every module registers its methods on import (see ../registry.py)."""
