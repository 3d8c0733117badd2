"""The merge stage: streaming, memory-bounded model merging (see stage.py and methods/)."""

from m2rl.merge.io import InputError
from m2rl.merge.registry import MergeError, MergeMethod, get_method, register_method
from m2rl.merge.stage import CARD_NAME, MergeResult, check_inputs, merge

__all__ = [
    "CARD_NAME", "InputError", "MergeError", "MergeMethod", "MergeResult", "check_inputs", "get_method", "merge",
    "register_method",
]
