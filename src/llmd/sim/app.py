"""Routes and request life cycle of one simulated replica.

Hot path: with zero latency and no delaying fault, a request is answered synchronously inside
`data_received` (one write for the whole response). Otherwise a task waits for a slot, sleeps
until absolute deadlines (`loop.call_at`), and writes each token frame at its deadline; with zero
ITL the remaining frames are coalesced into one write. The request record is sim/job.py, its parsing
sim/parse.py, the answers of immediate faults sim/fault_replies.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time

from llmd.errors import ConfigError
from llmd.sim import frames as F
from llmd.sim.config import SimConfig
from llmd.sim.engine import QueueFull, Slots
from llmd.sim.fault_replies import immediate_fault
from llmd.sim.faults import IMMEDIATE, FaultPicker
from llmd.sim.job import JSON_CT, TEXT_CT, Job
from llmd.sim.kvcache import CapacityError, KVCache, block_keys
from llmd.sim.latency import Latency
from llmd.sim.metrics import Stats, render
from llmd.sim.parse import parse_request
from llmd.sim.protocol import HttpConnection, response, status_line
from llmd.sim.record import Recorder

CHAT = b"/v1/chat/completions"
COMPLETIONS = b"/v1/completions"
KV_EVENTS = b"/llmd/kv-events"
SSE_HEAD = (b"content-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n")
SPLIT_GAP = 0.002  # seconds between the two halves of a split frame, so they arrive as separate reads
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,200}")


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    """Sleep until an absolute loop.time() deadline (no drift from accumulated sleeps)."""
    if when <= loop.time():
        return
    fut = loop.create_future()
    handle = loop.call_at(when, _wake, fut)
    try:
        await fut
    finally:
        handle.cancel()


class SimApp:
    def __init__(self, cfg: SimConfig, recorder: Recorder | None = None) -> None:
        self.cfg = cfg.validate()
        self.rng = random.Random(cfg.seed)
        self.latency = Latency(cfg, self.rng)
        self.slots = Slots(cfg.max_num_seqs, cfg.max_waiting)
        self.kv = KVCache(cfg.kv_cache_size, cfg.block_size) if cfg.enable_kvcache else None
        self.stats = Stats()
        self.faults = FaultPicker(cfg.faults, self.rng)
        self.recorder = recorder
        self.port = 0
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by SimServer before serving
        self.tasks: set[asyncio.Task] = set()
        self.model_json = {n: json.dumps(n).encode() for n in cfg.names}
        self.frames = {(chat, crlf): F.Frames(chat, crlf) for chat in (True, False) for crlf in (False, True)}
        self.instant = not (cfg.ttft or cfg.ttft_std or cfg.itl or cfg.prefill_overhead or cfg.prefill_per_token)
        self.models_requests = 0
        self.kv_waiting = 0  # requests holding a slot while they wait for KV blocks (--kv-wait)
        self.kv_freed: list[asyncio.Future] = []
        self._seq = 0
        self._id_base = b"%08x" % self.rng.getrandbits(32)

    # routing -----------------------------------------------------------------------------------
    def handle(self, conn: HttpConnection, method: bytes, path: bytes, headers: dict,  # noqa: PLR0917 (hot path)
               body: bytes, keep_alive: bool, recv_ns: int) -> None:
        q = path.find(b"?")
        query = b""
        if q >= 0:
            path, query = path[:q], path[q + 1:]
        if path == KV_EVENTS and method == b"GET":
            return self._kv_events(conn, keep_alive, query)
        if path in (CHAT, COMPLETIONS):
            if method != b"POST":
                return self._plain_error(conn, keep_alive, 405, f"use POST for {path.decode()}")
            return self._generate(conn, path, headers, body, keep_alive, recv_ns)
        if method != b"GET":
            if path in ROUTES:
                return self._plain_error(conn, keep_alive, 405, f"use GET for {path.decode()}")
            return self._plain_error(conn, keep_alive, 404, f"no route for {path.decode('latin-1')}")
        route = ROUTES.get(path)
        if route is None:
            return self._plain_error(conn, keep_alive, 404, f"no route for {path.decode('latin-1')}")
        route(self, conn, keep_alive)

    def _plain_error(self, conn, keep_alive, status, message) -> None:
        conn.respond(status, F.error_json(message, "NotFoundError" if status == 404 else "BadRequestError", status),
                     JSON_CT, keep_alive)

    def _models(self, conn, keep_alive) -> None:
        self.models_requests += 1
        n, cfg = self.models_requests, self.cfg
        if n <= cfg.warmup_404:
            return conn.respond(404, b"", TEXT_CT, keep_alive)  # fresh gateway: no route yet (Envoy: empty 404)
        if n <= cfg.warmup_404 + cfg.warmup_503:
            return conn.respond(503, b"no healthy upstream", TEXT_CT, keep_alive)
        created = int(time.time())
        data = [{"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": name,
                 "parent": None, "max_model_len": cfg.max_model_len} for name in cfg.names]
        conn.respond(200, json.dumps({"object": "list", "data": data}).encode(), JSON_CT, keep_alive)

    def _kv_events(self, conn, keep_alive, query: bytes) -> None:
        """GET /llmd/kv-events?after=SEQ: the KV cache's block events, the local stand-in for vLLM's ZMQ stream."""
        if self.kv is None:
            return self._plain_error(conn, keep_alive, 404, "KV cache simulation is off (--enable-kvcache)")
        after = -1
        for part in query.split(b"&"):
            name, _, value = part.partition(b"=")
            if name == b"after" and value.lstrip(b"-").isdigit():
                after = int(value)
        doc = self.kv.events_after(after)
        doc["block_size"] = self.cfg.block_size
        conn.respond(200, json.dumps(doc).encode(), JSON_CT, keep_alive)

    def _health(self, conn, keep_alive) -> None:
        conn.respond(200, b"", TEXT_CT, keep_alive)

    def _metrics(self, conn, keep_alive) -> None:
        kv = self.kv
        # a request waiting for KV blocks holds its slot but is waiting, as vLLM counts it
        body = render(self.cfg.names[0], self.stats, running=self.slots.running - self.kv_waiting,
                      waiting=len(self.slots.waiting) + self.kv_waiting,
                      kv_usage=kv.usage if kv else 0.0, block_size=self.cfg.block_size,
                      num_gpu_blocks=self.cfg.kv_cache_size)
        conn.respond(200, body, b"text/plain; version=0.0.4; charset=utf-8", keep_alive)

    # generation --------------------------------------------------------------------------------
    def _generate(self, conn, path, headers, body, keep_alive, recv_ns) -> None:  # noqa: PLR0917 (hot path)
        given = headers.get(b"x-request-id")
        if given:
            rid = given if _SAFE_ID.fullmatch(given) else json.dumps(given.decode("latin-1"))[1:-1].encode()
        else:
            self._seq += 1
            rid = self._id_base + b"-%d" % self._seq
            given = rid
        job = Job(conn, path, path == CHAT, keep_alive, recv_ns, rid, b"x-request-id: " + given + b"\r\n")
        try:
            job.fault = self.faults.pick(headers.get(b"x-llmd-fault"))
        except ConfigError as err:
            return self._error(job, 400, f"x-llmd-fault: {err.message}", "BadRequestError")
        problem = parse_request(self, job, body)
        if problem is not None:
            return self._error(job, *problem)
        fault = job.fault
        if fault is not None and fault.kind in IMMEDIATE:
            return immediate_fault(self, job)
        if self.instant and (fault is None or fault.kind == "crlf") and self.slots.try_acquire():
            return self._run_instant(job)
        task = self.loop.create_task(self._run(job))
        conn.task = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _error(self, job: Job, status: int, message: str, err_type: str, extra: bytes = b"") -> None:
        job.status = status
        job.conn.respond(status, F.error_json(message, err_type, status), JSON_CT, job.keep_alive,
                         job.rid_hdr + extra)
        self._record(job)

    # life cycle --------------------------------------------------------------------------------
    def _begin(self, job: Job, can_wait: bool = False) -> bool | None:
        """Pin KV blocks and count the prompt; on KV overflow answer 500 (as upstream) and free the slot, or with
        --kv-wait return None (the caller waits for a release) when the request alone fits in the cache."""
        stats = self.stats
        if self.kv is not None:
            cfg = self.cfg
            assert job.ids is not None  # tokenized when the KV cache is on
            job.keys = block_keys(job.ids, cfg.block_size, job.model, cfg.hash_seed)
            try:
                present = self.kv.acquire(job.keys)
            except CapacityError as err:
                fits = len(job.keys) <= self.kv.capacity
                job.keys = None
                if can_wait and cfg.kv_wait and fits:
                    return None
                self.slots.release()
                self._error(job, 500, str(err), "InternalServerError")
                return False
            job.n_cached = present * cfg.block_size
            stats.prefix_queries += job.n_prompt
            stats.prefix_hits += job.n_cached
        stats.prompt_tokens += job.n_prompt
        return True

    def _end(self, job: Job, complete: bool) -> None:
        if job.keys and self.kv is not None:
            self.kv.release(job.keys)
            freed, self.kv_freed = self.kv_freed, []
            for fut in freed:  # every KV waiter retries; those that still do not fit wait again
                if not fut.done():
                    fut.set_result(None)
        self.slots.release()
        stats = self.stats
        stats.generation_tokens += job.sent
        if complete:
            reason = job.finish.decode()
            stats.success[reason] = stats.success.get(reason, 0) + 1
            stats.ttft.observe(job.ttft)
            stats.e2e.observe((time.perf_counter_ns() - job.recv_ns) / 1e9)
        self._record(job)

    def _record(self, job: Job) -> None:
        if self.recorder is not None:
            self.recorder.add((job.rid.decode("latin-1"), job.path.decode(), job.status, self.port, job.recv_ns,
                               job.first_ns, job.last_ns, job.sent, job.fault.kind if job.fault else None,
                               job.token_ns))

    def _stream_head(self, job: Job) -> bytes:
        return (status_line(200) + SSE_HEAD + job.rid_hdr + (b"" if job.keep_alive else b"connection: close\r\n")
                + b"\r\n")

    def _usage(self, job: Job) -> bytes:
        return F.usage_json(job.n_prompt, job.n_out, job.n_cached)

    def _run_instant(self, job: Job) -> None:
        """Zero latency and a free slot: the whole response in one write, no task, no timer."""
        if not self._begin(job):
            return
        self.stats.queue.observe(0.0)
        created = int(time.time())
        words = F.words(job.start_word, job.n_out)
        if job.stream:
            fr = self.frames[(job.chat, job.fault is not None)]  # the only fault allowed here is crlf
            head, pre = fr.heads(job.rid, created, job.model_json)
            parts = [fr.first(pre)]
            parts += [fr.content(pre, w) for w in words]
            parts.append(fr.tail(head, pre, job.finish, self._usage(job) if job.include_usage else None))
            job.conn.write(self._stream_head(job) + F.chunk(b"".join(parts)) + F.LAST_CHUNK)
        else:
            body = F.full_body(job.chat, job.rid, created, job.model_json, text=b"".join(words),
                               finish=job.finish, usage=self._usage(job))
            job.conn.write(response(200, body, JSON_CT, job.keep_alive, job.rid_hdr))
        job.first_ns = job.last_ns = time.perf_counter_ns()
        job.sent = job.n_out
        if self.recorder is not None:
            job.token_ns = [job.first_ns] * job.n_out  # one write carried every token
        self._end(job, True)
        job.conn.done(job.keep_alive)

    async def _wait_for_kv(self, job: Job) -> bool | None:
        fut = self.loop.create_future()
        self.kv_freed.append(fut)
        self.kv_waiting += 1
        try:
            await fut
        except asyncio.CancelledError:
            self.slots.release()  # the client left while waiting: the slot is not held any more
            raise
        finally:
            self.kv_waiting -= 1
        return self._begin(job, can_wait=True)

    async def _run(self, job: Job) -> None:
        try:
            await self.slots.acquire()
        except QueueFull as err:
            return self._error(job, 429, str(err), "RateLimitError")
        began = self._begin(job, can_wait=True)
        while began is None:
            began = await self._wait_for_kv(job)
        if not began:
            return
        loop = self.loop
        start = loop.time()
        self.stats.queue.observe((time.perf_counter_ns() - job.recv_ns) / 1e9)
        ttft = self.latency.ttft(job.n_prompt, job.n_cached, self.slots.running)
        if job.fault is not None and job.fault.kind == "slow_ttft":
            ttft = (ttft or 0.1) * job.fault.number
        job.ttft = ttft
        complete = False
        try:
            if job.stream:
                complete = await self._stream(job, start + ttft)
            else:
                complete = await self._unary(job, start + ttft)
        except Exception:
            job.conn.close()
            raise
        finally:
            self._end(job, complete)
        if not job.conn.closed:
            job.conn.done(job.keep_alive)

    async def _stream(self, job: Job, deadline: float) -> bool:
        """Write the SSE stream token by token at absolute deadlines; returns True if it ended normally."""
        loop, conn, cfg = self.loop, job.conn, self.cfg
        fault = job.fault
        kind = fault.kind if fault is not None else None
        fire_at = FaultPicker.after_tokens(fault, job.n_out) if fault is not None and kind in _STREAM_FAULTS else -1
        split = kind == "split_frames"
        fr = self.frames[(job.chat, kind == "crlf")]
        head, pre = fr.heads(job.rid, int(time.time()), job.model_json)
        words = F.words(job.start_word, job.n_out)
        recording = self.recorder is not None
        if recording:
            job.token_ns = []
        http_head = [self._stream_head(job)]
        sse: list[bytes] = []
        pending = 0  # content frames in `sse`

        def flush(last: bool = False) -> None:
            nonlocal pending
            data = b"".join(http_head)
            http_head.clear()
            if sse:
                data += F.chunk(b"".join(sse))
                sse.clear()
            if last:
                data += F.LAST_CHUNK
            if data:
                conn.write(data)
            if pending:
                t = time.perf_counter_ns()
                if job.first_ns is None:
                    job.first_ns = t
                job.last_ns = t
                job.sent += pending
                if recording and job.token_ns is not None:
                    job.token_ns.extend([t] * pending)
                pending = 0

        for i in range(job.n_out + 1):
            if i == 0:
                flush_wait = True
            elif i < job.n_out:
                d = self.latency.itl(self.slots.running)
                deadline += d
                flush_wait = d > 0
            else:
                flush_wait = False
            if flush_wait:
                flush()
                await sleep_until(loop, deadline)
            if i == fire_at:
                if kind == "malformed_frame":
                    sse.append(fr.malformed)
                elif kind == "error_frame":
                    sse.append(fr.error + fr.done)
                    flush(last=True)
                    return False
                elif kind == "early_close":
                    flush()
                    conn.close()  # FIN after the flushed bytes: no finish_reason, no [DONE], no last chunk
                    return False
                elif kind == "stall":
                    flush()
                    await asyncio.sleep(cfg.stall_cap)  # cancelled as soon as the client goes away
                    conn.close()
                    return False
            if i == job.n_out:
                break
            if i == 0:
                sse.append(fr.first(pre))
            sse.append(fr.content(pre, words[i]))
            pending += 1
            if split:
                frame = b"".join(sse)
                sse.clear()
                half = len(frame) // 2
                sse.append(frame[:half])
                flush()
                await asyncio.sleep(SPLIT_GAP)
                sse.append(frame[half:])
                flush()
        sse.append(fr.tail(head, pre, job.finish, self._usage(job) if job.include_usage else None))
        flush(last=True)
        return True

    async def _unary(self, job: Job, deadline: float) -> bool:
        """Non-streamed: sleep until the last token's deadline, then answer with Content-Length."""
        conn = job.conn
        kind = job.fault.kind if job.fault is not None else None
        if kind == "stall":
            await asyncio.sleep(self.cfg.stall_cap)
            conn.close()
            return False
        running = self.slots.running
        for _ in range(job.n_out - 1):
            deadline += self.latency.itl(running)
        await sleep_until(self.loop, deadline)
        if kind == "error_frame":
            job.status = 500
            conn.write(response(500, F.error_json("simulated engine failure", "InternalServerError", 500), JSON_CT,
                                job.keep_alive, job.rid_hdr))
            return False
        body = F.full_body(job.chat, job.rid, int(time.time()), job.model_json,
                           text=b"".join(F.words(job.start_word, job.n_out)), finish=job.finish, usage=self._usage(job))
        if kind == "malformed_frame":
            body = body[: len(body) // 2]
        head = (status_line(200) + b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
                + job.rid_hdr + (b"" if job.keep_alive else b"connection: close\r\n") + b"\r\n")
        job.first_ns = time.perf_counter_ns()
        if kind in ("early_close", "split_frames"):
            half = len(body) // 2
            conn.write(head + body[:half])
            if kind == "early_close":
                conn.close()
                return False
            await asyncio.sleep(SPLIT_GAP)
            conn.write(body[half:])
        else:
            conn.write(head + body)
        job.last_ns = time.perf_counter_ns()
        job.sent = job.n_out
        return kind != "malformed_frame"


_STREAM_FAULTS = frozenset({"error_frame", "early_close", "stall", "malformed_frame"})

ROUTES = {
    b"/v1/models": SimApp._models,
    b"/health": SimApp._health,
    b"/ready": SimApp._health,
    b"/metrics": SimApp._metrics,
}
