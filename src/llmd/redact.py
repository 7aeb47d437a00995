"""The single Redactor: every byte llmd prints, logs or writes passes through `redact()`.

Secrets are registered once (the HF token when it is read). Each is hidden in its raw form and in
the base64 forms Kubernetes would show (a Secret's data, with or without padding).
"""

from __future__ import annotations

import base64
import re
import threading

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Values that look like tokens even when nobody registered them (e.g. a child echoing HF_TOKEN).
_TOKEN_SHAPES = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def _variants(secret: str) -> set[str]:
    raw = secret.encode()
    out = {secret}
    b64 = base64.b64encode(raw).decode()
    out.add(b64)
    out.add(b64.rstrip("="))
    return {v for v in out if len(v) >= 4}


def register(secret: str | None) -> None:
    """Remember a secret so it never leaves the process in clear text."""
    global _pattern
    if not secret or len(secret.strip()) < 4:
        return
    with _lock:
        _secrets.update(_variants(secret.strip()))
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _TOKEN_SHAPES.sub(MASK, text)


def clear() -> None:
    """Forget all secrets (tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None
