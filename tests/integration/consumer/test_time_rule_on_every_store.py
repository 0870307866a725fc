"""The time rule (tests/support/consumer_scenarios.py) through translation and every kind of
store: an outcome event stamped ahead of its arrival counts at its arrival, so BOS's report
over HTTP that comes after it decides, whatever the producer's clock said."""

from datetime import timedelta

import pytest

from tests.integration.consumer.conftest import StoresFactory
from tests.support import consumer_scenarios as scenario
from tests.support.pipeline_harness import PipelineHarness

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("status", "ahead", "report_success", "complete"), scenario.TIME_RULE_CASES
)
async def test_an_outcome_stamped_ahead_counts_at_its_arrival_against_a_later_report(
    make_stores: StoresFactory,
    status: str,
    ahead: timedelta,
    report_success: bool,
    complete: bool,
) -> None:
    stores = make_stores()
    harness = PipelineHarness(
        stores.repository,
        stores.placement,
        stores.metrics,
        stores.registry,
        clock=lambda: scenario.RECEIVED,
    )
    ended = await scenario.outcome_then_report(
        stores.repository, harness, status=status, ahead=ahead, report_success=report_success
    )
    assert ended is complete
