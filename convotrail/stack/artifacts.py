"""Fetch the broker and registry artifacts from Maven Central into a cache directory.

Kafka comes as `org.apache.kafka:kafka_2.13` plus an slf4j binding, copied with its
runtime dependencies by `mvn dependency:copy-dependencies` from a throw-away pom.
Apicurio Registry comes as its release archive (`...:tar.gz:all`), unpacked here.
Each artifact lands in a temporary directory first and is renamed into place only
when complete, so an interrupted fetch never leaves a half-filled cache behind.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from convotrail.errors import StackError

KAFKA_VERSION = "4.1.1"
SLF4J_VERSION = "2.0.17"
# 3.0.9 is the newest Apicurio release that runs on Java 17 (3.3.x needs Java 21).
APICURIO_VERSION = "3.0.9"
MIN_JAVA = 17

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.convotrail</groupId>
  <artifactId>local-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>{slf4j}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>{slf4j}</version>
    </dependency>
  </dependencies>
</project>
"""


@dataclass(frozen=True)
class Artifacts:
    """Where the fetched artifacts live once complete."""

    kafka_libs: Path
    registry_jar: Path
    java: str


def find_java() -> str:
    """The `java` executable (JAVA_HOME first, then PATH), checked to be Java 17 or newer."""
    import os

    candidates = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for java in candidates:
        if not Path(java).exists():
            continue
        version = java_major_version(java)
        if version is not None and version >= MIN_JAVA:
            return java
    raise StackError(
        f"Java {MIN_JAVA}+ not found: install a JDK (apt-get install openjdk-17-jdk-headless) "
        "or set JAVA_HOME to one"
    )


def java_major_version(java: str) -> int | None:
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8"; everything we accept reports its major first.
    return int(match.group(2) or 0) if major == 1 else major


def _find_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) not found on PATH: install it (apt-get install maven); "
            "it fetches the Kafka and registry artifacts from Maven Central"
        )
    return mvn


def _run_maven(args: list[str], cwd: Path, log: Path, what: str) -> None:
    command = [_find_maven(), "-B", "-q", *args]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False
            )
        except subprocess.TimeoutExpired:
            raise StackError(
                f"fetching {what} with Maven timed out after 15 minutes", str(log)
            ) from None
    if result.returncode != 0:
        raise StackError(
            f"fetching {what} with Maven failed (exit {result.returncode}): "
            "check the network access to Maven Central",
            str(log),
        )


def kafka_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def registry_dir(cache_dir: Path) -> Path:
    return cache_dir / f"apicurio-registry-{APICURIO_VERSION}"


def ensure_kafka(cache_dir: Path) -> Path:
    """The directory of Kafka's runtime jars, fetched on first use."""
    target = kafka_dir(cache_dir) / "libs"
    if (target / ".complete").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log = cache_dir / "fetch.log"
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-kafka-") as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(_KAFKA_POM.format(kafka=KAFKA_VERSION, slf4j=SLF4J_VERSION))
        _run_maven(
            [
                "dependency:copy-dependencies",
                f"-DoutputDirectory={work / 'libs'}",
                "-DincludeScope=runtime",
            ],
            work,
            log,
            f"Kafka {KAFKA_VERSION}",
        )
        (work / "libs" / ".complete").touch()
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        (work / "libs").rename(target)
    return target


def ensure_registry(cache_dir: Path) -> Path:
    """The Apicurio Registry runner jar, fetched and unpacked on first use."""
    target = registry_dir(cache_dir)
    marker = target / ".complete"
    if marker.exists():
        return _runner_jar(target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    log = cache_dir / "fetch.log"
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-registry-") as tmp:
        work = Path(tmp)
        artifact = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
        _run_maven(
            ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={work}"],
            work,
            log,
            f"Apicurio Registry {APICURIO_VERSION}",
        )
        archives = list(work.glob("*.tar.gz"))
        if not archives:
            raise StackError(f"Maven fetched no archive for {artifact}", str(log))
        unpacked = work / "unpacked"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(unpacked, filter="data")
        (unpacked / ".complete").touch()
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    return _runner_jar(target)


def _runner_jar(directory: Path) -> Path:
    # 2.x/3.0.x ship a *-runner.jar; 3.3.x ships a Quarkus fast-jar (quarkus-run.jar).
    for pattern in ("*-runner.jar", "quarkus-run.jar"):
        found = sorted(directory.glob(pattern))
        if found:
            return found[0]
    raise StackError(f"no runnable jar in {directory}: delete it and fetch again")


def ensure_all(cache_dir: Path) -> Artifacts:
    java = find_java()
    return Artifacts(
        kafka_libs=ensure_kafka(cache_dir), registry_jar=ensure_registry(cache_dir), java=java
    )
