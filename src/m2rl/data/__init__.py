"""Data stage: sources -> unified records per domain, split, dedup, blend, data card."""

from m2rl.data.registry import Reject, SourceOptionError, get_source, register_source, source_names
from m2rl.data.stage import DataResult, DataStageError, run_data_stage

__all__ = ["DataResult", "DataStageError", "Reject", "SourceOptionError", "get_source", "register_source",
           "run_data_stage", "source_names"]
