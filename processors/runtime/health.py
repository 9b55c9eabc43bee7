"""The process's HTTP endpoints: /metrics, /healthz (the loop is alive), /readyz
(partitions assigned and restored). Served from a daemon thread; never blocks the loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from convotrail.errors import metrics_port_error

log = logging.getLogger(__name__)

# The loop beats every iteration (at most ~0.1 s apart when idle); a loop that has
# not beaten for this long is stuck.
ALIVE_WITHIN = 30.0


class Probe:
    """What the endpoints report, read from the loop's status."""

    def __init__(self, alive: Callable[[], float], ready: Callable[[], tuple[bool, str]]) -> None:
        self.since_beat = alive
        self.ready = ready


def _handler(probe: Probe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                quiet = probe.since_beat()
                ok = quiet < ALIVE_WITHIN
                self._json(200 if ok else 503, {"alive": ok, "seconds_since_beat": round(quiet, 3)})
            elif path == "/readyz":
                ready, detail = probe.ready()
                self._json(200 if ready else 503, {"ready": ready, "detail": detail})
            else:
                self._json(404, {"error": f"no such endpoint {path}"})

        def _json(self, status: int, body: dict[str, object]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

    return Handler


def serve(host: str, port: int, probe: Probe) -> ThreadingHTTPServer:
    try:
        server = ThreadingHTTPServer((host, port), _handler(probe))
    except OSError as exc:
        raise metrics_port_error(host, port, exc) from exc
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log.info("metrics and health on http://%s:%d", host, server.server_address[1])
    return server


def since(moment: float) -> float:
    return time.monotonic() - moment


class LoopStatus:
    """What /healthz and /readyz report: the loop's last beat, and readiness."""

    def __init__(self) -> None:
        self.last_beat = time.monotonic()
        self.ready = False
        self.assigned = 0
        self.stopping = False

    def beat(self, ready: bool, assigned: int) -> None:
        self.last_beat = time.monotonic()
        self.ready = ready
        self.assigned = assigned
