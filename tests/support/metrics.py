"""Scrape a process's Prometheus endpoint, as ops would."""

from __future__ import annotations

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
