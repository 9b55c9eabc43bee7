"""`python -m processors.conversation`: run one conversation worker (see worker.py)."""

from __future__ import annotations

import sys

from convotrail.settings import Settings
from processors.conversation.worker import WorkerOptions, create_app


def main() -> None:
    settings = Settings.from_env()
    store = "memory://" if "--memory" in sys.argv else "rocksdb://"
    app = create_app(settings, WorkerOptions(store=store))
    loglevel = "info" if "--verbose" in sys.argv else "warning"
    sys.argv = [sys.argv[0], "worker", "--loglevel", loglevel]
    app.main()


if __name__ == "__main__":
    main()
