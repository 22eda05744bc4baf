"""The command lines: argument parsing over the service's use cases (`python -m collectors|analytics` land here)."""
