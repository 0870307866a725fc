"""Domain errors raised below the HTTP and Kafka edges, which map them to responses."""


class StateStoreUnavailableError(RuntimeError):
    """The batch state store cannot answer now; the caller must not guess the state."""

    def __init__(self, store: str, reason: str, retry_after_seconds: float = 5.0):
        super().__init__(f"{store} unavailable: {reason}")
        self.store = store
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


class DeadLetterUnavailableError(RuntimeError):
    """The dead-letter topic cannot take a record now; the message must not be committed."""


class StartupError(RuntimeError):
    """Something the service cannot run without is missing; the message names the setting."""
