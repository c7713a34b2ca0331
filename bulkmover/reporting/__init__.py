"""``bulkmover report``: every planned file with its outcome, read from the state file."""
