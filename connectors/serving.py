"""Running an aiohttp app the way the CLI's servers need it: a port that cannot be
bound is one line naming it and the fix, not a traceback; a request aiohttp's HTTP
parser refuses is a counted JSON refusal, not an ERROR with a traceback."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from convotrail.errors import ConvotrailError

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
