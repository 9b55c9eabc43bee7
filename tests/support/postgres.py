"""A throw-away PostgreSQL server started from the installed server binaries.

initdb refuses to run as root, and CI runs as root: then the cluster is owned by
the `postgres` system user (created by Debian's package) and every server command
runs through `runuser`. The data directory lives under a fresh directory that
user owns; the server listens on 127.0.0.1 on a free port with trust auth.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        path = Path(initdb).resolve()
        if (path.parent / "pg_ctl").exists() and (path.parent / "postgres").exists():
            return path.parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found: install them (apt-get install postgresql)"
    )


@dataclass
class PostgresServer:
    port: int
    root: Path
    bindir: Path
    user: str | None  # system user that owns the cluster, when we are root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def _run(self, *command: str) -> None:
        argv = list(command)
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(command[:2])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()} (log: {self.log})"
            )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
            "-A", "trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.resume()

    def resume(self) -> None:
        """Start the server on its existing data directory (after `start` or `pause`)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def pause(self) -> None:
        """Stop the server, keeping its data (an outage): clients see connections refused.

        `-m fast` disconnects every client and shuts down cleanly, as an operator's
        restart or a failover does; `resume` brings the same databases back.
        """
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                  "-w", "stop")  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                      "-w", "stop")  # fmt: skip
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(port: int) -> PostgresServer:
    bindir = find_bindir()
    user: str | None = None
    root = Path(tempfile.mkdtemp(prefix="convotrail-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root but no `postgres` system user") from None
        user = owner.pw_name
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(port=port, root=root, bindir=bindir, user=user)
    server.start()
    return server
