"""The HTTP endpoints every long-running process serves on its metrics port.

    server = serve("0.0.0.0", 9101, Probe(alive=seconds_since_beat, ready=readiness))

- `/metrics`: Prometheus (convotrail/metrics.py `exposition`, build info included);
- `/healthz`: alive, i.e. the process's loop beat within ALIVE_WITHIN seconds (200, else
  503: stuck, restart it);
- `/readyz`: ready for what the process is for, as its probe says (200, else 503 with
  the reason); a process without a probe of its own is ready while it is alive.

Every reply is JSON except /metrics; an unknown path is a JSON 404. Served from daemon
threads: a scrape never blocks the process's loop. The stream runtime
(processors/runtime/run.py), the sink and any exporter use this one server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from convotrail.errors import metrics_port_error
from convotrail.metrics import exposition

log = logging.getLogger(__name__)

# A loop beats every iteration (at most a few seconds apart when idle or waiting); one
# that has not beaten for this long is stuck.
ALIVE_WITHIN = 30.0


class Probe:
    """What the endpoints report: seconds since the loop's last beat, and readiness."""

    def __init__(
        self,
        alive: Callable[[], float],
        ready: Callable[[], tuple[bool, str]] | None = None,
    ) -> None:
        self.since_beat = alive
        self.ready = ready or (lambda: (True, "running"))


def since(moment: float) -> float:
    return time.monotonic() - moment


def always_alive() -> Probe:
    """For a process whose liveness is its HTTP thread answering (no loop to watch)."""
    return Probe(alive=lambda: 0.0)


def _handler(probe: Probe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, content_type = exposition()
                self._send(200, body, content_type)
            elif path == "/healthz":
                quiet = probe.since_beat()
                ok = quiet < ALIVE_WITHIN
                self._json(200 if ok else 503, {"alive": ok, "seconds_since_beat": round(quiet, 3)})
            elif path == "/readyz":
                ready, detail = probe.ready()
                self._json(200 if ready else 503, {"ready": ready, "detail": detail})
            else:
                self._json(404, {"error": "not found", "reason": "not-found"})

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
    """Serve the endpoints from a daemon thread; PortInUse (one line) if the port cannot
    be bound. Stop with `server.shutdown(); server.server_close()`."""
    try:
        server = ThreadingHTTPServer((host, port), _handler(probe))
    except OSError as exc:
        raise metrics_port_error(host, port, exc) from exc
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log.info("metrics and health on http://%s:%d", host, server.server_address[1])
    return server
