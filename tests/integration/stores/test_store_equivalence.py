"""Every store answers what the domain's one merge says: any changes, applied in any grouping
of apply_many calls, with redeliveries among them, read back as the snapshot of
`facts_added_by` over the distinct changes."""

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_conductor_service.domain.batch_facts import facts_added_by
from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchStateChange,
)
from tests.integration.stores.builders import change_builders, view
from tests.integration.stores.conftest import StoreUnderTest

ESSAYS = [f"e{i}" for i in range(4)]
STEPS = ["spellcheck", "nlp"]

changes = change_builders(ESSAYS, STEPS, max_essays=3)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    builders=st.lists(changes, min_size=1, max_size=8),
    data=st.data(),
)
async def test_a_store_reads_back_the_domain_merge_of_what_it_was_given(
    store: StoreUnderTest, builders: list[Any], data: st.DataObject
) -> None:
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    distinct: list[BatchStateChange] = [build(batch) for build in builders]
    redelivered = data.draw(st.lists(st.sampled_from(distinct), max_size=3))
    sent = data.draw(st.permutations([*distinct, *redelivered]))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(sent) - 1)), max_size=3)))
    cuts = [cut for cut in cuts if cut < len(sent)]

    applied = 0
    for start, end in zip([0, *cuts], [*cuts, len(sent)], strict=True):
        results = await store.repository.apply_many(sent[start:end])
        applied += results.count(ApplyResult.APPLIED)

    assert applied == len(distinct)
    expected = facts_added_by(batch, distinct).to_snapshot()
    assert view(await store.repository.get_snapshot(batch)) == view(expected)
