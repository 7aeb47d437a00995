"""JSON Schema (draft 2020-12) of the `llmd.perf/v1` report written by --output, for consumers and for tests.

Bump `SCHEMA` in llmd.loadgen.report and this document together when a field changes meaning or disappears;
adding fields is compatible (additionalProperties stays open at the top of each object).
"""

from __future__ import annotations

from llmd.sse import FAILURE_CLASSES

_NUM = {"type": ["number", "null"]}
_STATS = {
    "type": "object",
    "required": ["count", "mean", "p50", "p90", "p95", "p99", "max", "min"],
    "properties": {"count": {"type": "integer", "minimum": 0},
                   **{k: _NUM for k in ("mean", "p50", "p90", "p95", "p99", "max", "min")}},
}
_STAGE = {
    "type": "object",
    "required": ["name", "label", "mode", "complete", "requests", "failures", "error_rate", "shed_429", "window_s",
                 "throughput", "ttft_ms", "queue_ms", "itl_ms", "tpot_ms", "e2e_ms", "tokens", "client", "breaches"],
    "properties": {
        "mode": {"enum": ["closed", "open"]},
        "concurrency": {"type": ["integer", "null"]},
        "rate": _NUM,
        "complete": {"type": "boolean"},
        "requests": {"type": "object", "required": ["measured", "ok", "failed", "warmup_excluded", "cancelled"],
                     "additionalProperties": {"type": "integer", "minimum": 0}},
        "failures": {"type": "object", "propertyNames": {"enum": list(FAILURE_CLASSES)},
                     "additionalProperties": {"type": "integer", "minimum": 1}},
        "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "throughput": {"type": "object", "required": ["request_rate", "output_token_rate", "total_token_rate"],
                       "additionalProperties": {"type": "number", "minimum": 0}},
        **{k: _STATS for k in ("ttft_ms", "queue_ms", "itl_ms", "tpot_ms", "e2e_ms")},
        "tokens": {"type": "object", "required": ["input", "output", "output_source", "cached"],
                   "properties": {"output_source": {"enum": ["usage", "events", "mixed", "none"]}}},
        "client": {"type": "object", "required": ["workers", "cpu_s", "wall_s", "cpu_per_core_max",
                                                  "loop_lag_p99_ms", "connections", "client_bound"]},
        "slo": {"type": "object", "required": ["limits_ms", "attainment_target", "attainment", "goodput"]},
        "breaches": {"type": "array", "items": {"type": "string"}},
    },
}
_RECORD = {
    "type": "object",
    "required": ["id", "stage", "worker", "index", "warmup", "ok", "failure", "status", "scheduled_s", "queue_ms",
                 "ttft_ms", "tpot_ms", "e2e_ms", "input_tokens", "output_tokens", "token_source", "cached_tokens"],
    "properties": {
        "ok": {"type": "boolean"},
        "failure": {"enum": [*FAILURE_CLASSES, None]},
        "token_source": {"enum": ["usage", "events"]},
        **{k: _NUM for k in ("queue_ms", "ttft_ms", "tpot_ms", "e2e_ms", "itl_max_ms")},
    },
}
REPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "llmd perf report",
    "type": "object",
    "required": ["schema", "complete", "started_at", "finished_at", "config", "environment", "metric_definitions",
                 "stages", "breaches", "warnings"],
    "properties": {
        "schema": {"const": "llmd.perf/v1"},
        "complete": {"type": "boolean"},
        "config": {"type": "object", "required": ["model", "workload", "api", "stages"]},
        "environment": {"type": "object", "required": ["llmd_version", "http_client", "event_loop", "endpoint",
                                                       "via_port_forward", "run_id"]},
        "metric_definitions": {"type": "object", "additionalProperties": {"type": "string"}},
        "stages": {"type": "array", "items": _STAGE},
        "breaches": {"type": "array", "items": {"type": "string"}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "records": {"type": "array", "items": _RECORD},
    },
}
