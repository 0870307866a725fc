from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.health import ComponentHealth, HealthState


async def reported(health: ConsumerHealth) -> ComponentHealth:
    report = await health.health()
    assert list(report) == ["kafka_consumer"]
    return report["kafka_consumer"]


async def test_a_disabled_consumer_is_healthy() -> None:
    component = await reported(ConsumerHealth(enabled=False))

    assert component == ComponentHealth(HealthState.OK, {"state": "disabled"})


async def test_an_enabled_consumer_that_has_not_connected_yet_is_degraded() -> None:
    component = await reported(ConsumerHealth(enabled=True))

    assert component == ComponentHealth(HealthState.DEGRADED, {"state": "starting"})


async def test_failing_to_connect_is_degraded_and_shows_the_error_and_failure_count() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.failing(ConsumerPhase.CONNECTING, "KafkaConnectionError('refused')")
    health.failing(ConsumerPhase.CONNECTING, "KafkaConnectionError('still refused')")

    component = await reported(health)

    assert component == ComponentHealth(
        HealthState.DEGRADED,
        {
            "state": "connecting",
            "error": "KafkaConnectionError('still refused')",
            "consecutive_failures": 2,
            "stalled_seconds": 0.0,
        },
    )


async def test_running_is_healthy_shows_partitions_and_clears_earlier_failures() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.failing(ConsumerPhase.CONNECTING, "refused")

    health.running(assigned_partitions=6)
    component = await reported(health)

    assert component == ComponentHealth(
        HealthState.OK, {"state": "running", "assigned_partitions": 6}
    )
    assert health.consecutive_failures == 0


async def test_retrying_a_batch_after_running_is_degraded_and_counts_from_one() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.failing(ConsumerPhase.CONNECTING, "refused")
    health.running(assigned_partitions=2)

    health.failing(ConsumerPhase.RETRYING, "StateStoreUnavailableError('redis')")
    component = await reported(health)

    assert component.state is HealthState.DEGRADED
    assert component.detail == {
        "state": "retrying",
        "error": "StateStoreUnavailableError('redis')",
        "consecutive_failures": 1,
        "stalled_seconds": 0.0,
    }


async def test_a_stopped_consumer_is_degraded() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.running(assigned_partitions=1)

    health.stopped()
    component = await reported(health)

    assert component == ComponentHealth(HealthState.DEGRADED, {"state": "stopped"})


async def test_a_consumer_stopped_while_failing_still_shows_the_last_error() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.failing(ConsumerPhase.RETRYING, "boom")

    health.stopped()
    component = await reported(health)

    assert component.detail == {
        "state": "stopped",
        "error": "boom",
        "consecutive_failures": 1,
        "stalled_seconds": 0.0,
    }


async def test_the_health_detail_renders_as_json_with_its_status() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.running(assigned_partitions=3)

    component = await reported(health)

    assert component.as_json() == {"status": "ok", "state": "running", "assigned_partitions": 3}


async def test_a_dead_consumer_is_unhealthy_and_shows_what_killed_it() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.running(assigned_partitions=2)

    health.failing(ConsumerPhase.DEAD, "RuntimeError('bug')")
    component = await reported(health)

    assert component == ComponentHealth(
        HealthState.UNHEALTHY,
        {
            "state": "dead",
            "error": "RuntimeError('bug')",
            "consecutive_failures": 1,
            "stalled_seconds": 0.0,
        },
    )


async def test_reconnecting_after_a_kafka_error_is_degraded_with_the_error() -> None:
    health = ConsumerHealth(enabled=True, clock=lambda: 0.0)
    health.running(assigned_partitions=2)

    health.failing(ConsumerPhase.RECONNECTING, "KafkaConnectionError('gone')")
    component = await reported(health)

    assert component.state is HealthState.DEGRADED
    assert component.detail["state"] == "reconnecting"
    assert component.detail["error"] == "KafkaConnectionError('gone')"


async def test_a_consumer_without_progress_for_longer_than_the_stall_limit_is_unhealthy() -> None:
    now = [100.0]
    health = ConsumerHealth(enabled=True, stall_seconds=60.0, clock=lambda: now[0])
    health.running(1)
    health.failing(ConsumerPhase.RETRYING, "StateStoreUnavailableError('redis')")
    now[0] += 59.0
    health.failing(ConsumerPhase.RETRYING, "StateStoreUnavailableError('redis')")

    assert (await health.health())["kafka_consumer"].state is HealthState.DEGRADED

    now[0] += 2.0
    report = (await health.health())["kafka_consumer"]
    assert report.state is HealthState.UNHEALTHY
    assert report.detail["stalled_seconds"] == 61.0

    health.running(1)
    assert (await health.health())["kafka_consumer"].state is HealthState.OK


def just_heard_from_its_broker(now: list[float], partitions: int) -> ConsumerHealth:
    """A running consumer (stall limit 60 s, silence limit 15 s) whose broker answered now."""
    health = ConsumerHealth(
        enabled=True, stall_seconds=60.0, silence_seconds=15.0, clock=lambda: now[0]
    )
    health.running(partitions)
    health.heard_from_broker()
    return health


async def test_a_running_consumer_whose_broker_is_silent_too_long_is_broker_unreachable() -> None:
    now = [100.0]
    health = just_heard_from_its_broker(now, partitions=3)
    now[0] += 15.0
    # The loop keeps calling running(): getmany returns nothing and fails no call.
    health.running(3)

    assert (await reported(health)).state is HealthState.OK
    assert health.stalled_for() == 0.0

    now[0] += 1.0
    health.running(3)
    component = await reported(health)
    assert component == ComponentHealth(
        HealthState.DEGRADED,
        {
            "state": "broker_unreachable",
            "assigned_partitions": 3,
            "error": "the Kafka broker has not answered for 16.0 s",
            "broker_silent_seconds": 16.0,
            "silence_limit_seconds": 15.0,
            "stalled_seconds": 16.0,
        },
    )
    assert health.reported_phase() is ConsumerPhase.BROKER_UNREACHABLE
    assert health.stalled_for() == 16.0


async def test_a_silence_past_the_stall_limit_is_unhealthy_and_an_answer_ends_it() -> None:
    now = [0.0]
    health = just_heard_from_its_broker(now, partitions=1)
    now[0] += 61.0

    component = await reported(health)
    assert component.state is HealthState.UNHEALTHY
    assert component.detail["stall_limit_seconds"] == 60.0

    # A fetch answered two seconds ago (its time is known after the fact).
    health.heard_from_broker(seconds_ago=2.0)
    assert await reported(health) == ComponentHealth(
        HealthState.OK, {"state": "running", "assigned_partitions": 1}
    )
    assert health.broker_silence() == 2.0
    # An older answer learnt later does not move the last contact back.
    health.heard_from_broker(seconds_ago=30.0)
    assert health.broker_silence() == 2.0


async def test_silence_is_the_broker_s_only_while_running_other_failures_say_their_own() -> None:
    now = [0.0]
    health = ConsumerHealth(enabled=True, silence_seconds=15.0, clock=lambda: now[0])
    health.running(1)
    health.heard_from_broker()
    health.failing(ConsumerPhase.RETRYING, "StateStoreUnavailableError('redis')")
    now[0] += 30.0

    component = await reported(health)
    assert component.detail["state"] == "retrying"
    assert component.detail["stalled_seconds"] == 30.0


async def test_no_silence_is_counted_before_a_client_has_joined() -> None:
    now = [0.0]
    health = ConsumerHealth(enabled=True, silence_seconds=15.0, clock=lambda: now[0])
    now[0] += 100.0
    health.running(0)

    assert health.broker_silence() == 0.0
    assert (await reported(health)).state is HealthState.OK
