"""The `bcs` command: the service itself, and the operator's tools beside it."""
