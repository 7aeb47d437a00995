"""Layered, validated, immutable settings with provenance.

Precedence (lowest first): built-in defaults < config file (--config / LLMD_CONFIG) < environment
(LLMD_* and the names shell-guide users already export) < command-line flags < --set path=value.
`Settings.sources` records where each value came from, so `llmd config` can explain it.

The model (choices, Settings, derived names) is settings/model.py, validation settings/validate.py, loading
settings/load.py; every name is importable from llmd.settings as before.
"""

from llmd.settings.load import (  # noqa: F401
    CONFIG_ENV,
    FIELDS,
    LEGACY_ENV,
    TOKEN_ENV,
    VALUE_RELEASES,
    clean_token,
    coerce,
    env_var,
    load_settings,
    parse_set,
    read_config_file,
    read_token_file,
)
from llmd.settings.model import (  # noqa: F401
    ACCELERATORS,
    ENVIRONMENTS,
    MODEL_CACHES,
    PLATFORMS,
    SCHEDULERS,
    Settings,
)
from llmd.settings.validation import (  # noqa: F401
    CONTEXT_NAME,
    DNS1035_LABEL,
    DNS1123_LABEL,
    HF_PART,
    HF_REPO_ID,
    K8S_QUANTITY,
    LABEL_VALUE,
    validate,
)
