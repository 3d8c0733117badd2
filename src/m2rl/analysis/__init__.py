"""Analysis and report: why mix and merge differ, and which one to pick.

- `analyze(spec_or_params, models, base, evals, train_cards, out) -> AnalysisResult`: runs the registered
  analyses (geometry, divergence, inheritance, behaviour, transfer, cost; one module each in
  `m2rl/analysis/analyses/`, the `analysis` registry) plus the accuracy table and the verdict, and writes `<out>/analysis.json`.
- `build_report(analysis_dir, out) -> ReportResult`: report.html (self-contained) and report.md, logged with
  the key numbers to the study's MLflow parent run.
- `compare(experiment) -> CompareResult`: the same tables rebuilt from the MLflow server alone.
"""

from m2rl.analysis.compare import CompareResult, StudyTables, compare
from m2rl.analysis.inputs import AnalysisError, ModelEntry
from m2rl.analysis.registry import AnalysisContext, get_analysis, register
from m2rl.analysis.report import ReportResult, build_report
from m2rl.analysis.stage import AnalysisResult, analyze, read_analysis

__all__ = [
    "AnalysisContext", "AnalysisError", "AnalysisResult", "CompareResult", "ModelEntry", "ReportResult",
    "StudyTables", "analyze", "build_report", "compare", "get_analysis", "read_analysis", "register",
]
