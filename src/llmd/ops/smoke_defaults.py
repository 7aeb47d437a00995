"""The smoke request's defaults, importable without the HTTP client (`llmd test --help` shows them)."""

DEFAULT_PROMPT = "Say hello in one short sentence."
DEFAULT_MAX_TOKENS = 16
DEFAULT_READY_TIMEOUT_S = 120.0  # for /v1/models to list the model; warm-up answers are tolerated until then
