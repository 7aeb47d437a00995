"""One generation request of the simulator, from parse to last byte (slotted: the hot path makes one per request)."""

from __future__ import annotations

from typing import Any

from llmd.sim.faults import FaultSpec

JSON_CT = b"application/json"
TEXT_CT = b"text/plain; charset=utf-8"


class Job:
    """One generation request from parse to last byte."""

    __slots__ = ("chat", "conn", "fault", "finish", "first_ns", "ids", "include_usage", "keep_alive", "keys",
                 "last_ns", "model", "model_json", "n_cached", "n_out", "n_prompt", "path", "recv_ns", "rid",
                 "rid_hdr", "sent", "start_word", "status", "stream", "token_ns", "ttft")

    fault: FaultSpec | None
    ids: list[int] | None
    keys: list[Any] | None
    first_ns: int | None
    last_ns: int | None
    token_ns: list[int] | None

    def __init__(self, conn, path, chat, keep_alive, recv_ns, rid, rid_hdr) -> None:  # noqa: PLR0917 (hot path)
        self.conn = conn
        self.path = path
        self.chat = chat
        self.keep_alive = keep_alive
        self.recv_ns = recv_ns
        self.rid = rid
        self.rid_hdr = rid_hdr
        self.fault = None
        self.status = 200
        self.stream = False
        self.include_usage = False
        self.model = ""
        self.model_json = b""
        self.ids = None
        self.keys = None
        self.n_prompt = self.n_cached = self.n_out = self.sent = self.start_word = 0
        self.finish = b"stop"
        self.first_ns = self.last_ns = None
        self.token_ns = None
        self.ttft = 0.0
