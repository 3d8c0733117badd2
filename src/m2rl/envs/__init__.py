"""Multi-turn environments (`m2rl.envs.api`): an episode's sandbox, the lock-step episode loop and the
transcript scorer; the kinds live in `m2rl.envs.kinds`."""

from m2rl.envs.api import (
    ENV_PARAMS_VAR,
    EnvError,
    Environment,
    Episode,
    Outcome,
    ToolCall,
    Turn,
    assistant_message,
    configure_environments,
    configured_params,
    env_name,
    is_env_record,
    new_environment,
    parse_turn,
    play_turn,
    run_episodes,
    score_transcript,
    tool_message,
)

__all__ = [
    "ENV_PARAMS_VAR", "EnvError", "Environment", "Episode", "Outcome", "ToolCall", "Turn", "assistant_message",
    "configure_environments", "configured_params", "env_name", "is_env_record", "new_environment", "parse_turn",
    "play_turn", "run_episodes", "score_transcript", "tool_message",
]
