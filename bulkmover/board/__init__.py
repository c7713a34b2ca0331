"""The progress board: a read-only view of counters the engine (or the state file) keeps."""
