"""Running an aiohttp app the way the CLI's servers need it: a port that cannot be
bound is one line naming it and the fix, not a traceback; a request aiohttp's HTTP
parser refuses is a counted JSON refusal, not an ERROR with a traceback; /readyz
answered from a cached, bounded check."""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from convotrail.errors import ConvotrailError
from convotrail.metrics import exposition

log = logging.getLogger(__name__)

BAD_HTTP: Final = "bad-http"  # the refusal reason of an unparseable request


class CannotListen(ConvotrailError):
    """The address could not be bound (in use, not permitted, no such address)."""


async def start_site(runner: web.AppRunner, host: str, port: int, what: str) -> None:
    """Bind `runner` to host:port, or raise CannotListen saying what to do."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"{what}: port {port} on {host} is already in use; stop what holds it "
                "or choose another with --port"
            ) from None
        raise CannotListen(f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from None


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, except that a request its HTTP parser refuses
    (duplicate Content-Type, bad chunk framing, an over-long header...) gets a JSON 4xx
    like every other refusal, is counted, and is logged in one line instead of an
    ERROR with a traceback: it is bad input, not a fault of the server."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        server = self._manager
        if status >= 500 or not isinstance(server, _JsonErrorServer):
            return super().handle_error(request, status, exc, message)
        log.info("refused unparseable HTTP from %s: %s", request.remote, str(exc).strip())
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; connection dropped")
        server.on_bad_http()
        reply = web.json_response({"error": "bad-request", "reason": BAD_HTTP}, status=status)
        reply.force_close()
        return reply


class _JsonErrorServer(web.Server):
    on_bad_http: Callable[[], None]

    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An AppRunner whose unparseable requests are JSON refusals; `on_bad_http` counts
    them (they name no endpoint, so they are counted under 'other')."""

    def __init__(
        self, app: web.Application, *, on_bad_http: Callable[[], None], **options: Any
    ) -> None:
        super().__init__(app, **options)
        self._on_bad_http = on_bad_http

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # same state, one overridden method
        assert isinstance(server, _JsonErrorServer)
        server.on_bad_http = self._on_bad_http
        return server


Readiness = Callable[[], tuple[bool, str]]


class ReadinessCheck:
    """A blocking readiness check (a metadata request, a database query) for an aiohttp
    server's /readyz: run off the event loop, one at a time, its answer reused for
    `ttl` seconds. /readyz is unauthenticated, so a flood of probes costs one check per
    `ttl`, not a thread each (the request handlers' threads come from the same pool)."""

    def __init__(self, check: Readiness, ttl: float = 2.0) -> None:
        self._check = check
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._answer: tuple[bool, str] = (False, "not checked yet")
        self._checked = -math.inf

    async def __call__(self) -> tuple[bool, str]:
        async with self._lock:
            if time.monotonic() - self._checked >= self._ttl:
                try:
                    self._answer = await asyncio.to_thread(self._check)
                except Exception as exc:  # a check's own failure means: not ready
                    self._answer = (False, f"{type(exc).__name__}: {exc}"[:300])
                self._checked = time.monotonic()
            return self._answer


def add_metrics_and_readiness(app: web.Application, ready: Readiness | None) -> None:
    """GET /metrics (Prometheus, build info included) and GET /readyz (`ready`, cached:
    200 or 503 with {"ready", "detail"}, as every process answers it; None: ready while
    the server answers), as routes named `metrics` and `readyz`."""
    check = ReadinessCheck(ready or (lambda: (True, "no dependency check configured")))

    async def metrics(_: web.Request) -> web.StreamResponse:
        body, content_type = exposition()
        # Set as a raw header: aiohttp refuses a charset inside content_type=.
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def readyz(_: web.Request) -> web.StreamResponse:
        ok, detail = await check()
        return web.json_response({"ready": ok, "detail": detail}, status=200 if ok else 503)

    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_get("/readyz", readyz, name="readyz")
