"""`python -m connectors.sink`: run the SQL sink (see connectors.sink.runner)."""

from connectors.sink.runner import main

raise SystemExit(main())
