"""The placement rule (tests/support/consumer_scenarios.py) through the consumer's pipeline on
every kind of store: in memory, in Redis, and in Redis in front of PostgreSQL (whose parking
lot is in PostgreSQL)."""

import pytest

from tests.integration.consumer.conftest import Stores, StoresFactory
from tests.support import consumer_scenarios as scenario
from tests.support.pipeline_harness import PipelineHarness

pytestmark = pytest.mark.integration


def harness(stores: Stores, **options: object) -> PipelineHarness:
    return PipelineHarness(
        stores.repository,
        stores.placement,
        stores.metrics,
        stores.registry,
        **options,  # type: ignore[arg-type]
    )


async def test_a_result_whose_essay_a_roster_names_is_placed_on_arrival(
    make_stores: StoresFactory,
) -> None:
    await scenario.placed_on_arrival(harness(make_stores()))


async def test_a_result_is_parked_until_a_roster_names_its_essay(
    make_stores: StoresFactory,
) -> None:
    await scenario.parked_until_a_roster_names_it(harness(make_stores()))


async def test_a_result_is_placed_once_never_into_a_batch_whose_roster_comes_later(
    make_stores: StoresFactory,
) -> None:
    await scenario.placed_once(harness(make_stores()))


async def test_a_result_is_dead_lettered_as_unplaceable_when_the_lot_is_full(
    make_stores: StoresFactory,
) -> None:
    await scenario.refused_when_the_lot_is_full(harness(make_stores(max_parked=1)))


async def test_an_expired_parked_result_is_gone(make_stores: StoresFactory) -> None:
    stores = make_stores(parked_ttl_seconds=1)
    await scenario.expired_results_are_gone(harness(stores), stores.past_expiry)


async def test_a_placed_change_that_fails_to_store_is_isolated_and_stays_parked(
    make_stores: StoresFactory,
) -> None:
    stores = make_stores()
    failing = scenario.FailingFor(stores.repository, set())
    stores.repository = failing
    await scenario.placed_change_that_fails_is_isolated(harness(stores), failing)
