"""The simulator's "simple tokenizer": one token per word or punctuation character, trailing
whitespace included (llm-d-inference-sim's fallback when the model is not on Hugging Face).

Token ids use CRC-32 of the piece (upstream uses FNV-32a); only equality of ids matters here,
and zlib.crc32 runs in C, which keeps long prompts cheap.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

_TOKEN = re.compile(r"(?:[^\w\s]|\w+)\s*")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def token_ids(text: str) -> list[int]:
    return [zlib.crc32(piece.encode()) for piece in _TOKEN.findall(text)]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def flatten_chat(messages: list) -> str:
    """Chat messages as the sim tokenises them: "### {role}:\\n{content}\\n" per message."""
    return "".join(
        f"### {m.get('role', '')}:\n{_content_text(m.get('content'))}\n" for m in messages if isinstance(m, dict))
