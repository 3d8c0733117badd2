"""`analysis.options`: per-analysis parameters in the spec, resolved when the spec is loaded."""

from __future__ import annotations

import pytest

from m2rl.analysis.stage import _params
from m2rl.spec.study import SpecError, spec_from_dict


def test_analysis_options_reach_the_stage_settings():
    spec = spec_from_dict({"analysis": {"options": {"divergence": {"resamples": 50, "confidence": 0.9}}}})
    assert _params(spec)[3] == {"divergence": {"resamples": 50, "confidence": 0.9}}


@pytest.mark.parametrize(("options", "line"), [
    ({"divergenc": {}}, "analysis.options.divergenc: unknown analysis 'divergenc'"),
    ({"divergence": {"resampls": 5}}, "analysis.options.divergence.resampls: unknown parameter"),
    ({"divergence": {"resamples": 0}}, "analysis.options.divergence.resamples: must be >= 1"),
])
def test_bad_analysis_options_fail_when_the_spec_loads(options, line):
    with pytest.raises(SpecError) as err:
        spec_from_dict({"analysis": {"options": options}})
    assert any(e.startswith(line) for e in err.value.errors), err.value.errors
