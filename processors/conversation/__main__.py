"""`python -m processors.conversation`: run one conversation worker (`convotrail worker`)."""

from __future__ import annotations

import sys

from convotrail.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", *sys.argv[1:]]
    main()
