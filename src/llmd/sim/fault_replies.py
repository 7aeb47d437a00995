"""The simulator's immediate faults: answers written at once, without a slot or a token stream."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from llmd.sim import frames as F
from llmd.sim.job import JSON_CT, TEXT_CT, Job

if TYPE_CHECKING:
    from llmd.sim.app import SimApp

HTML_PAGE = (b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
             b"<hr><center>simulated proxy</center></body></html>")


def immediate_fault(app: SimApp, job: Job) -> None:
    """Answer at once as a broken proxy or server would (status codes with Envoy's bodies, 429, HTML, no choices)."""
    fault, conn = job.fault, job.conn
    assert fault is not None  # called for an immediate fault only
    if fault.kind == "status":
        code = int(fault.number)
        job.status = code
        if code == 503:
            conn.respond(503, b"no healthy upstream", TEXT_CT, job.keep_alive, job.rid_hdr)  # Envoy's text
        elif code == 500:
            conn.respond(500, b"fault filter abort", TEXT_CT, job.keep_alive, job.rid_hdr)  # Envoy fault filter
        elif code == 404:
            conn.respond(404, b"", TEXT_CT, job.keep_alive, job.rid_hdr)  # no route: Envoy's empty 404
        else:
            return app._error(job, code, f"simulated HTTP {code}",
                               "BadRequestError" if code < 500 else "InternalServerError")
    elif fault.kind == "rate_limit":
        return app._error(job, 429, "Too Many Requests (simulated rate limit)", "RateLimitError",
                           b"retry-after: %d\r\n" % int(fault.number))
    elif fault.kind == "html_200":
        conn.respond(200, HTML_PAGE, b"text/html", job.keep_alive, job.rid_hdr)
    elif fault.kind == "no_choices":
        usage = F.usage_json(job.n_prompt, 0, 0)
        body = (b'{"id":"' + job.rid + b'","object":"chat.completion","created":%d,"model":' % int(time.time())
                + job.model_json + b',"usage":' + usage + b"}")
        conn.respond(200, body, JSON_CT, job.keep_alive, job.rid_hdr)
    app._record(job)
