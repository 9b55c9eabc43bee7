"""The SQL sink: conversation-timeline and conversation-state into SQLite or PostgreSQL.

- `batch.py`: the pure core (what one transaction writes: deduplicated timeline
  entries, the newest snapshot per conversation, the next offset per partition);
- `store.py`: tables, Alembic migrations on open, `Store.apply` (one transaction
  for rows and positions), reads;
- `runner.py`: the thin Kafka shell (`run_sink`, `python -m connectors.sink`);
- `query.py`: what `convotrail timeline` and `convotrail state` print;
- `snapshot.py`: the JSON kept in the database.

Nothing here decides anything about conversations: processors do; the sink
stores what they published, exactly once.
"""
