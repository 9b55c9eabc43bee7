-- The schema registry keeps its own database beside the sinks' one.
CREATE DATABASE registry OWNER convotrail;
