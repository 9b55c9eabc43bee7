"""Stream processors: a pure core per processor plus a thin faust-streaming shell.

Cores are functions of (state, event, now) with no I/O and no clock reads; shells
decode, call the core, write the table and emit the outputs.
"""
