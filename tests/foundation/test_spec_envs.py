"""The spec's `envs:` block: every environment named and its params validated when the spec loads."""

from __future__ import annotations

import pytest

from m2rl.spec import SpecError, spec_from_dict


def test_envs_params_are_validated_by_name_and_field():
    spec = spec_from_dict({"envs": {"workplace_assistant": {"data": "s3://b/workbench", "max_turns": 6}}})
    assert spec.envs["workplace_assistant"]["max_turns"] == 6
    with pytest.raises(SpecError) as err:
        spec_from_dict({"envs": {"workplace_asistant": {}, "workplace_assistant": {"max_turn": 3}}})
    text = str(err.value)
    assert "envs.workplace_asistant" in text and "did you mean 'workplace_assistant'" in text
    assert "envs.workplace_assistant.max_turn" in text and "max_turns" in text
    with pytest.raises(SpecError, match=r"envs.workplace_assistant.max_turns"):
        spec_from_dict({"envs": {"workplace_assistant": {"max_turns": 0}}})
