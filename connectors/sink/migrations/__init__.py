"""Alembic migrations of the sink database, run by `connectors.sink.store.open_store`."""
