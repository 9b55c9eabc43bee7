"""Real `convotrail worker` and `convotrail sink` processes for the benchmarks, and what
is read of them from outside: /readyz, /metrics, CPU time from /proc (every thread)."""

from __future__ import annotations

import bisect
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from convotrail.settings import Settings
from tests.support.ports import free_ports

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, all its threads, from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mib(path: Path) -> float:
    """What the files under `path` take (a worker's RocksDB stores)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def process_env(settings: Settings, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        SCHEMA_REGISTRY_URL=settings.registry_url,
        CONVOTRAIL_TOPIC_PREFIX=settings.topics.prefix,
        CONVOTRAIL_PARTITIONS=str(settings.partitions),
        CONVOTRAIL_HOME=str(home),
    )
    for name in ("CONVOTRAIL_TIMERS", "CONVOTRAIL_PROCESSOR", "CONVOTRAIL_METRICS_PORT"):
        env.pop(name, None)
    return env


class CpuTrace:
    """(wall clock, CPU seconds) samples of a process, to read its CPU time at any
    moment of the run afterwards (linear between samples)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.times: list[float] = []
        self.cpu: list[float] = []

    def sample(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            value = cpu_seconds(self.pid)
            self.times.append(time.time())
            self.cpu.append(value)

    def at(self, moment: float) -> float:
        if not self.times:
            return float("nan")
        i = bisect.bisect_left(self.times, moment)
        if i == 0:
            return self.cpu[0]
        if i >= len(self.times):
            return self.cpu[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        c0, c1 = self.cpu[i - 1], self.cpu[i]
        return c0 + (c1 - c0) * (moment - t0) / (t1 - t0) if t1 > t0 else c1


class Process:
    """A child process with its log in `home`; stopped with SIGTERM (or killed)."""

    def __init__(self, command: list[str], settings: Settings, home: Path, log: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.log_path = home / log
        self.started = time.time()
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=process_env(settings, home),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.pid = self.process.pid
        self.cpu = CpuTrace(self.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def check(self) -> None:
        if not self.alive():
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.log_path.stem} exited ({self.process.returncode}):\n{tail}")

    def stop(self, timeout: float = 60) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()


class Worker(Process):
    """`convotrail worker --processor P --instance-id I --metrics-port N [--no-timers]`."""

    def __init__(
        self,
        settings: Settings,
        home: Path,
        *,
        processor: str = "conversation",
        instance_id: str = "bench",
        timers: bool = False,
        extra: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.port = port or free_ports(1)[0]
        command = [sys.executable, "-m", "convotrail", "worker", "--processor", processor,
                   "--instance-id", instance_id, "--metrics-port", str(self.port),
                   "--timers" if timers else "--no-timers", *extra]  # fmt: skip
        super().__init__(command, settings, home, f"{processor}-{instance_id}.log")

    def _get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self._get("/readyz")[0] == 200

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics by its full name (labels included)."""
        status, text = self._get("/metrics")
        found: dict[str, float] = {}
        if status != 200:
            return found
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    found[name] = float(value)
        return found

    def metric(self, prefix: str) -> float:
        """The sum of the samples whose name starts with `prefix` (every label)."""
        return sum(v for k, v in self.metrics().items() if k.split("{")[0] == prefix)

    def wait_ready(self, timeout: float = 600, beat: float = 0.02) -> float:
        """Poll /readyz (sampling CPU meanwhile); the wall-clock time it first said 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cpu.sample()
            if self.ready():
                return time.time()
            self.check()
            time.sleep(beat)
        raise RuntimeError(f"{self.log_path}: not ready in {timeout} s")


def commit_summary(worker: Worker) -> dict[str, float]:
    """Transactions, records per transaction and commit time, from the worker's metrics."""
    found = worker.metrics()

    def total(name: str, label: str = "") -> float:
        return sum(v for k, v in found.items() if k.split("{")[0] == name and label in k)

    count = total("convotrail_commit_seconds_count")
    nan = float("nan")
    return {
        "transactions": total("convotrail_transactions_total", '"committed"'),
        "aborted": total("convotrail_transactions_total", '"aborted"'),
        "records_processed": total("convotrail_records_processed_total"),
        "records_per_transaction": total("convotrail_transaction_records_sum") / count
        if count else nan,
        "commit_ms_mean": total("convotrail_commit_seconds_sum") / count * 1000 if count else nan,
        **{
            f"commit_{phase}_ms_mean": total("convotrail_commit_phase_seconds_sum",
                                             f'phase="{phase}"') / count * 1000 if count else nan
            for phase in ("outputs", "kafka", "stores")
        },
    }  # fmt: skip


class Sink(Process):
    """`convotrail sink` into a database, with its batch timeout."""

    def __init__(
        self, settings: Settings, home: Path, url: str, *, group: str, batch_timeout: float = 0.5
    ) -> None:
        command = [sys.executable, "-m", "convotrail", "sink", "--database-url", url,
                   "--group", group, "--batch-timeout", str(batch_timeout)]  # fmt: skip
        super().__init__(command, settings, home, f"sink-{group}.log")
