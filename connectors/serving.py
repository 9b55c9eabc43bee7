"""Starting an aiohttp site the way the CLI's servers need it: a port that cannot be
bound is one line naming it and the fix, not a traceback."""

from __future__ import annotations

import errno

from aiohttp import web

from convotrail.errors import ConvotrailError


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
