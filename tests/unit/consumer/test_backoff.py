import pytest

from batch_conductor_service.consumer.backoff import ExponentialBackoff


def delays(backoff: ExponentialBackoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_the_delay_doubles_per_consecutive_failure_at_full_jitter() -> None:
    backoff = ExponentialBackoff(0.5, 100.0, jitter=lambda: 1.0)

    assert delays(backoff, 5) == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff.failures == 5


def test_the_delay_stops_growing_at_the_cap() -> None:
    backoff = ExponentialBackoff(1.0, 10.0, jitter=lambda: 1.0)

    assert delays(backoff, 7) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_no_jitter_halves_the_delay_so_it_never_drops_below_half_the_ceiling() -> None:
    backoff = ExponentialBackoff(1.0, 10.0, jitter=lambda: 0.0)

    assert delays(backoff, 6) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = ExponentialBackoff(1.0, 60.0, jitter=lambda: 1.0)
    delays(backoff, 4)

    backoff.reset()

    assert backoff.failures == 0
    assert delays(backoff, 2) == [1.0, 2.0]


def test_a_very_long_outage_stays_at_the_cap_without_overflowing() -> None:
    backoff = ExponentialBackoff(1.0, 30.0, jitter=lambda: 1.0)
    backoff.failures = 5000

    assert backoff.next_delay() == 30.0


@pytest.mark.parametrize("failures", [0, 1, 3, 10])
def test_the_default_random_jitter_stays_between_half_and_all_of_the_ceiling(
    failures: int,
) -> None:
    ceiling = min(8.0, 0.5 * 2.0**failures)
    for _ in range(200):
        backoff = ExponentialBackoff(0.5, 8.0)
        backoff.failures = failures
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
