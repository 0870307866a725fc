"""Exponential backoff with jitter for retrying our own infrastructure."""

import random
from collections.abc import Callable


class ExponentialBackoff:
    def __init__(
        self,
        initial_seconds: float,
        maximum_seconds: float,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._initial = initial_seconds
        self._maximum = maximum_seconds
        self._jitter = jitter
        self.failures = 0

    def next_delay(self) -> float:
        """Doubles per consecutive failure up to the cap; jitter spreads replicas apart."""
        ceiling = min(self._maximum, self._initial * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return ceiling * (0.5 + 0.5 * self._jitter())

    def reset(self) -> None:
        self.failures = 0
