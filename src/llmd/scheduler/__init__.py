"""EPP scheduler profiles, their effective EndpointPickerConfig, and validation against the pinned EPP image.

Stable import path for the cluster render and the local scheduling gateway:

    from llmd.scheduler import effective_config, profile_names, validate_config
"""

from __future__ import annotations

from llmd.scheduler.profiles import EppConfig, Resolved, effective_config, resolve
from llmd.scheduler.profiles import names as profile_names
from llmd.scheduler.validate import Finding
from llmd.scheduler.validate import check as validate_config

__all__ = ["EppConfig", "Finding", "Resolved", "effective_config", "profile_names", "resolve", "validate_config"]
