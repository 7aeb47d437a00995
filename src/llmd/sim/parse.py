"""The simulator's request parsing: the JSON body of a (chat) completion into a Job, or the 400/404 that
vLLM would answer (bad JSON, unknown model, bad prompt or max_tokens, past the context length)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from llmd.sim import frames as F
from llmd.sim.job import Job
from llmd.sim.tokenizer import count_tokens, flatten_chat, token_ids

if TYPE_CHECKING:
    from llmd.sim.app import SimApp


def parse_request(app: SimApp, job: Job, body: bytes) -> tuple[int, str, str] | None:
    """Fill the job from the JSON body; return (status, message, type) when the request is invalid."""
    cfg = app.cfg
    try:
        req = json.loads(body)
    except ValueError:
        return 400, "request body is not valid JSON", "BadRequestError"
    if not isinstance(req, dict):
        return 400, "request body must be a JSON object", "BadRequestError"
    model = req.get("model") or cfg.names[0]
    if not isinstance(model, str):
        return 400, "model must be a string", "BadRequestError"
    model_json = app.model_json.get(model)
    if model_json is None:
        return 404, f"The model `{model}` does not exist.", "NotFoundError"
    job.model_json = model_json
    job.model = model
    text, ids = "", None
    if job.chat:
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, "messages must be a non-empty list", "BadRequestError"
        text = flatten_chat(messages)
        max_tokens = req.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = req.get("max_tokens")
    else:
        prompt = req.get("prompt")
        if isinstance(prompt, str):
            text = prompt
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            text = "".join(prompt)  # one choice for the whole batch (simplification)
        elif isinstance(prompt, list) and prompt and all(type(p) is int for p in prompt):
            ids = prompt
        else:
            return 400, "prompt must be a string, a list of strings or a list of token ids", "BadRequestError"
        max_tokens = req.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        return 400, f"max_tokens must be a positive integer, got {max_tokens!r}", "BadRequestError"
    if app.kv is not None and ids is None:
        ids = token_ids(text)
    job.ids = ids
    n_prompt = job.n_prompt = len(ids) if ids is not None else count_tokens(text)
    requested = n_prompt + (max_tokens or 0)
    fault = job.fault
    if requested > cfg.max_model_len or n_prompt >= cfg.max_model_len or (
            fault is not None and fault.kind == "context_length"):
        where = "messages" if job.chat else "prompt"
        return 400, (f"This model's maximum context length is {cfg.max_model_len} tokens. However, you requested "
                     f"{requested} tokens ({n_prompt} in the {where}, {max_tokens or 0} in the completion). "
                     f"Please reduce the length of the {where} or completion."), "BadRequestError"
    job.stream = bool(req.get("stream"))
    opts = req.get("stream_options")
    job.include_usage = job.stream and isinstance(opts, dict) and bool(opts.get("include_usage"))
    limit = max_tokens if max_tokens is not None else min(cfg.max_model_len - n_prompt, cfg.random_output_cap)
    if req.get("ignore_eos"):
        n = limit
    elif cfg.output_len:
        n = min(cfg.output_len, limit)
    else:
        n = app.rng.randint(1, limit)
    job.n_out = n
    job.finish = b"length" if (max_tokens is not None and n >= max_tokens) or req.get("ignore_eos") else b"stop"
    job.start_word = app.rng.randrange(len(F.WORDS))
    return None
