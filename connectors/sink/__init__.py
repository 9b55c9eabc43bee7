"""The SQL sink: timeline, state, read receipts and delivery status into SQLite or PostgreSQL.

- `batch.py`: the pure core (what one transaction writes: deduplicated timeline
  entries, the newest snapshot per conversation, the next offset per partition);
- `store.py`: tables, Alembic migrations on open, `Store.apply` (one transaction
  for rows and positions), reads;
- `runner.py`: the process (`run_sink`, `python -m connectors.sink`): start-up
  checks, the consume loop, waiting out database outages;
- `loop.py`: one consumer's decode, batch, write and rebalance callbacks;
- `failures.py`: whose fault a database error is (the row's: DLQ; the
  database's absence: wait; the configuration's: one line);
- `dead_letters.py`, `backoff.py`, `metrics.py`, `stats.py`;
- `query.py`: what `convotrail timeline` and `convotrail state` print;
- `snapshot.py`: the JSON kept in the database.

Nothing here decides anything about conversations: processors do; the sink
stores what they published, exactly once.
"""
