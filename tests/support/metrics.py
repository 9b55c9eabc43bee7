"""Scrape a process's Prometheus endpoint, as ops would."""

from __future__ import annotations

import urllib.error
import urllib.request


def scrape(port: int) -> dict[str, float]:
    """Every sample on http://127.0.0.1:PORT/metrics, by name with its labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    values: dict[str, float] = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def probe(port: int, path: str) -> int | None:
    """The HTTP status of a process's /healthz or /readyz; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def ready(port: int) -> bool:
    return probe(port, "/readyz") == 200
