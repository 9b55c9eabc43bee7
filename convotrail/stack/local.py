"""The embedded default stack: one Kafka broker (KRaft) and one Apicurio registry.

Both run as local Java processes started from artifacts fetched by
`convotrail.stack.artifacts`. Everything the stack writes lives under one state
directory: pid files, logs, Kafka's log dirs and the registry's H2 database (so
schema ids stay valid for the records Kafka keeps across restarts).

Besides its PLAINTEXT listener the broker always has a SASL_PLAINTEXT one
(SCRAM-SHA-512, `Settings.kafka_sasl_port`) whose users `add_scram_user` creates, so
secured clients can be tested without a second cluster; broker and controller
traffic stay on PLAINTEXT.

A process is "ours" only when its command line carries the marker
`-Dconvotrail.stack.home=<state dir>`: `stop` never signals anything else, even
when a stale pid file points at a pid the kernel has since reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from convotrail.errors import StackError
from convotrail.settings import KafkaConfig, Settings
from convotrail.stack import artifacts

# Any fixed base64url UUID works: the cluster is formatted once per state directory.
CLUSTER_ID = "4L6g3nShT-eMCtK--X86sw"
KAFKA_HEAP = ["-Xms128m", "-Xmx512m"]
REGISTRY_HEAP = ["-Xms64m", "-Xmx512m"]
# The SASL_PLAINTEXT listener's only mechanism; add_scram_user creates its users.
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 4096
# Kafka 4.x still ships ConfigCommand in the core jar (kafka_2.13), not in kafka-tools.
CONFIG_COMMAND = "kafka.admin.ConfigCommand"


@dataclass(frozen=True)
class Endpoints:
    bootstrap_servers: str
    registry_url: str


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running", "stopped" or "stale" (pid file left by a crash)
    pid: int | None
    address: str
    log: Path

    def describe(self) -> str:
        pid = f" pid {self.pid}" if self.pid else ""
        return f"{self.name:<9} {self.state:<8}{pid}  {self.address}  log: {self.log}"


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class ScramUserError(StackError):
    """A SCRAM user of the local broker could not be created or could not log in."""


def _tool_error(output: str) -> str:
    """The one line that says what went wrong in a Kafka command-line tool's output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Caused by: "):
            qualified, _, message = line.removeprefix("Caused by: ").partition(": ")
            name = qualified.rsplit(".", 1)[-1]
            return f"{name}: {message}" if message else name
    meaningful = [
        line for line in lines
        if not line.startswith(("at ", "Error while executing", "java.util.concurrent."))
    ]  # fmt: skip
    return meaningful[-1] if meaningful else "no output (see the log)"


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _process_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


class _Service:
    """One Java process of the stack: its pid file, log and command line."""

    def __init__(self, name: str, state_dir: Path, port: int) -> None:
        self.name = name
        self.state_dir = state_dir
        self.port = port
        self.pid_file = state_dir / f"{name}.pid"
        self.log = state_dir / "logs" / f"{name}.log"
        self.marker = f"-Dconvotrail.stack.home={state_dir}"
        # Set when this Python process started the JVM, so stop() can reap it.
        self.process: subprocess.Popen[bytes] | None = None

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The pid from the pid file when that process is alive and is ours."""
        pid = self.recorded_pid()
        if pid is None:
            return None
        cmdline = _process_cmdline(pid)
        if cmdline is None or self.marker not in cmdline or _is_zombie(pid):
            return None
        return pid

    def status(self, address: str) -> ServiceStatus:
        pid = self.running_pid()
        if pid is not None:
            state = "running"
        elif self.pid_file.exists():
            state = "stale"
        else:
            state = "stopped"
        return ServiceStatus(self.name, state, pid, address, self.log)

    def launch(self, command: list[str]) -> subprocess.Popen[bytes]:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            out.flush()
            # A new session keeps Ctrl-C in the user's terminal from reaching the JVM;
            # the stack is stopped explicitly, registry first, then the broker.
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.state_dir,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        self.process = process
        return process

    def stop(self, timeout: float = 30.0) -> str:
        pid = self.running_pid()
        if pid is None:
            if self.pid_file.exists():
                self.pid_file.unlink()
                return f"{self.name}: removed stale pid file {self.pid_file}"
            return f"{self.name}: not running"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running_pid() is not None:
            time.sleep(0.1)
        forced = False
        if self.running_pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            forced = True
            while self.running_pid() is not None:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        if self.process is not None:
            self.process.wait(timeout=5)
            self.process = None
        return f"{self.name}: stopped pid {pid}" + (" (killed after timeout)" if forced else "")


class LocalStack:
    """Start, stop and inspect the local broker and registry of one state directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = (settings.home / "stack").resolve()
        self.cache_dir = settings.cache_dir
        self.kafka = _Service("kafka", self.state_dir, settings.kafka_port)
        self.registry = _Service("registry", self.state_dir, settings.registry_port)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            bootstrap_servers=f"127.0.0.1:{self.settings.kafka_port}",
            registry_url=f"http://127.0.0.1:{self.settings.registry_port}/apis/ccompat/v7",
        )

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The broker's SASL_PLAINTEXT listener (SCRAM-SHA-512 users from add_scram_user)."""
        return f"127.0.0.1:{self.settings.kafka_sasl_port}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- status ---------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        endpoints = self.endpoints
        return [
            self.kafka.status(endpoints.bootstrap_servers),
            self.registry.status(endpoints.registry_url),
        ]

    def is_running(self) -> bool:
        return all(service.state == "running" for service in self.status())

    # -- start ----------------------------------------------------------------

    def start(self, timeout: float = 120.0, progress: Progress = _quiet) -> Endpoints:
        """Start whatever is not running yet and wait until both services answer.

        Idempotent: a service already running from this state directory is left alone.
        """
        with self._locked():
            progress("checking Java and the cached artifacts (first run fetches them with Maven)")
            found = artifacts.ensure_all(self.cache_dir)
            self._check_ports()
            deadline = time.monotonic() + timeout
            kafka_process = None
            if self.kafka.running_pid() is None:
                self.kafka.pid_file.unlink(missing_ok=True)
                address = self.endpoints.bootstrap_servers
                progress(f"starting Kafka {artifacts.KAFKA_VERSION} on {address}")
                kafka_process = self._start_kafka(found)
            registry_process = None
            if self.registry.running_pid() is None:
                self.registry.pid_file.unlink(missing_ok=True)
                progress(
                    f"starting Apicurio Registry {artifacts.APICURIO_VERSION} "
                    f"on 127.0.0.1:{self.settings.registry_port}"
                )
                registry_process = self._start_registry(found)
            self._wait_for_kafka(kafka_process, deadline)
            self._wait_for_registry(registry_process, deadline)
            progress("broker and registry are answering")
            return self.endpoints

    def _check_ports(self) -> None:
        wanted = [
            (self.kafka, self.settings.kafka_port, "CONVOTRAIL_KAFKA_PORT"),
            (self.kafka, self.settings.controller_port, "CONVOTRAIL_CONTROLLER_PORT"),
            (self.registry, self.settings.registry_port, "CONVOTRAIL_REGISTRY_PORT"),
            (self.kafka, self.settings.kafka_sasl_port, "CONVOTRAIL_KAFKA_SASL_PORT"),
        ]
        for service, port, variable in wanted:
            if service.running_pid() is None and port_is_open(port):
                raise StackError(
                    f"port {port} for the {service.name} is taken by another process: "
                    f"stop that process or set {variable} to a free port"
                )

    def _start_kafka(self, found: artifacts.Artifacts) -> subprocess.Popen[bytes]:
        kafka_home = self.state_dir / "kafka"
        data_dir = kafka_home / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        properties = kafka_home / "server.properties"
        properties.write_text(self._server_properties(data_dir))
        classpath = f"{found.kafka_libs}/*"
        if not (data_dir / "meta.properties").exists():
            # -g (ignore formatted) makes a re-run after an interrupted format safe.
            self.kafka.log.parent.mkdir(parents=True, exist_ok=True)
            with self.kafka.log.open("ab") as out:
                result = subprocess.run(
                    [found.java, *KAFKA_HEAP, "-cp", classpath, "kafka.tools.StorageTool",
                     "format", "-g", "-t", CLUSTER_ID, "-c", str(properties)],
                    stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False,
                )  # fmt: skip
            if result.returncode != 0:
                raise StackError("formatting Kafka's storage failed", str(self.kafka.log))
        return self.kafka.launch(
            [
                found.java,
                *KAFKA_HEAP,
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
                self.kafka.marker,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(properties),
            ]
        )

    def _server_properties(self, data_dir: Path) -> str:
        port, controller = self.settings.kafka_port, self.settings.controller_port
        sasl = self.settings.kafka_sasl_port
        partitions = self.settings.partitions
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},"
            f"SASL_PLAINTEXT://127.0.0.1:{sasl}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
            # Clients that must authenticate (SCRAM users from add_scram_user) use the
            # SASL_PLAINTEXT listener; broker and controller traffic stays on PLAINTEXT.
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "log.dirs": str(data_dir),
            "num.partitions": str(partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Consumer groups (faust workers, sinks) join at once instead of after 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created explicitly (`convotrail topics create`) with the shared
            # partition count; an auto-created topic would break co-partitioning.
            "auto.create.topics.enable": "false",
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def _start_registry(self, found: artifacts.Artifacts) -> subprocess.Popen[bytes]:
        data = self.state_dir / "registry"
        data.mkdir(parents=True, exist_ok=True)
        return self.registry.launch(
            [
                found.java,
                *REGISTRY_HEAP,
                self.registry.marker,
                "-Dquarkus.http.host=127.0.0.1",
                f"-Dquarkus.http.port={self.settings.registry_port}",
                # File-backed H2 keeps schema ids stable across restarts of the stack.
                f"-Dapicurio.datasource.url=jdbc:h2:file:{data / 'registry'}",
                "-Dquarkus.log.level=WARN",
                "-jar",
                str(found.registry_jar),
            ]
        )

    def _wait_for_kafka(self, process: subprocess.Popen[bytes] | None, deadline: float) -> None:
        from confluent_kafka.admin import AdminClient

        port = self.settings.kafka_port
        while time.monotonic() < deadline:
            self._check_alive(self.kafka, process)
            if port_is_open(port):
                admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
                try:
                    metadata = admin.list_topics(timeout=2)
                except Exception:  # the broker answers the socket before the protocol
                    metadata = None
                if metadata is not None and metadata.brokers:
                    self._warm_up_coordinators(deadline)
                    return
            time.sleep(0.2)
        raise StackError(
            f"Kafka did not answer on 127.0.0.1:{port} in time: look at its log, "
            "then run `convotrail stack stop` and start again",
            str(self.kafka.log),
        )

    def _warm_up_coordinators(self, deadline: float) -> None:
        """Have the broker create and load __transaction_state before anyone needs it.

        Otherwise the first idempotent or transactional producer of every fresh stack
        logs "Coordinator load in progress" while the broker creates that topic.
        """
        from confluent_kafka import KafkaException, Producer

        producer = Producer(
            {
                "bootstrap.servers": f"127.0.0.1:{self.settings.kafka_port}",
                "transactional.id": "convotrail-stack-warm-up",
                "log_level": 0,
            }
        )
        while time.monotonic() < deadline:
            try:
                producer.init_transactions(max(1.0, min(30.0, deadline - time.monotonic())))
                return
            except KafkaException as exc:
                if not exc.args[0].retriable():
                    raise StackError(
                        f"Kafka's transaction coordinator failed to load: {exc.args[0]}",
                        str(self.kafka.log),
                    ) from exc

    def _wait_for_registry(self, process: subprocess.Popen[bytes] | None, deadline: float) -> None:
        url = f"{self.endpoints.registry_url}/subjects"
        while time.monotonic() < deadline:
            self._check_alive(self.registry, process)
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise StackError(
            f"the schema registry did not answer on {url} in time: look at its log, "
            "then run `convotrail stack stop` and start again",
            str(self.registry.log),
        )

    @staticmethod
    def _check_alive(service: _Service, process: subprocess.Popen[bytes] | None) -> None:
        if process is not None and process.poll() is not None:
            service.pid_file.unlink(missing_ok=True)
            raise StackError(
                f"{service.name} exited during start-up (exit {process.returncode})",
                str(service.log),
            )
        if process is None and service.running_pid() is None:
            raise StackError(f"{service.name} is no longer running", str(service.log))

    # -- restart and users ----------------------------------------------------

    def restart_kafka(self, timeout: float = 120.0) -> None:
        """Stop the broker alone (SIGTERM, SIGKILL after 30 s, like `stop`) and start it
        again on the same ports and data; the registry keeps running.

        Returns once the restarted broker answers; `timeout` bounds that wait. Clients
        that were connected see the broker go away and come back, as in a rolling
        restart of a real cluster.
        """
        with self._locked():
            found = artifacts.ensure_all(self.cache_dir)
            self.kafka.stop()
            self._check_ports()
            deadline = time.monotonic() + timeout
            process = self._start_kafka(found)
            self._wait_for_kafka(process, deadline)

    def add_scram_user(self, name: str, password: str, timeout: float = 60.0) -> None:
        """Create (or reset) a SCRAM-SHA-512 user with Kafka's own ConfigCommand.

        Returns once a client authenticates as that user on the SASL_PLAINTEXT
        listener: the controller stores the credential at once, but the broker only
        accepts it after it has applied that metadata record (usually well under a
        second; `timeout` bounds the wait).
        """
        if not name or any(c.isspace() for c in name) or any(c in name for c in ",[]="):
            raise ScramUserError(
                f"SCRAM user name {name!r} is not usable: it must be non-empty, "
                "without blanks or any of , [ ] ="
            )
        if not password or "[" in password or "]" in password:
            raise ScramUserError(
                f"the password of SCRAM user {name!r} must be non-empty and without "
                "[ or ] (ConfigCommand's list syntax)"
            )
        if self.kafka.running_pid() is None:
            raise ScramUserError(
                "the local broker is not running: start it with `convotrail stack start` "
                "before adding SCRAM users"
            )
        found = artifacts.ensure_all(self.cache_dir)
        command = [
            found.java, "-Xms32m", "-Xmx256m", "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", f"{found.kafka_libs}/*", CONFIG_COMMAND,
            "--bootstrap-server", self.endpoints.bootstrap_servers,
            "--alter", "--entity-type", "users", "--entity-name", name,
            "--add-config",
            f"{SCRAM_MECHANISM}=[iterations={SCRAM_ITERATIONS},password={password}]",
        ]  # fmt: skip
        log = self.state_dir / "logs" / "config-command.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            raise ScramUserError(
                f"Kafka's ConfigCommand did not finish in 120 s creating SCRAM user {name!r}: "
                "is the broker answering?",
                str(self.kafka.log),
            ) from None
        output = (result.stdout + result.stderr).replace(password, "***")
        with log.open("a") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} add SCRAM user {name}"
                      f" (exit {result.returncode})\n{output}")  # fmt: skip
        if result.returncode != 0:
            raise ScramUserError(
                f"creating SCRAM user {name!r} failed: {_tool_error(output)}", str(log)
            )
        self._wait_for_scram_login(name, password, time.monotonic() + timeout)

    def _wait_for_scram_login(self, name: str, password: str, deadline: float) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        config: KafkaConfig = {
            "bootstrap.servers": self.sasl_bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": name,
            "sasl.password": password,
            "log_level": 0,
        }
        while time.monotonic() < deadline:
            # A fresh client per attempt: one that failed to authenticate backs off.
            admin = AdminClient(config)
            try:
                if admin.list_topics(timeout=1.0).brokers:
                    return
            except KafkaException:
                pass
        raise ScramUserError(
            f"SCRAM user {name!r} was created but could not log in on "
            f"{self.sasl_bootstrap_servers} in time",
            str(self.kafka.log),
        )

    # -- stop -----------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop the registry, then the broker; clean up stale pid files."""
        with self._locked():
            return [self.registry.stop(), self.kafka.stop()]
