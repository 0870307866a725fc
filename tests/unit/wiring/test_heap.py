"""What start-up built is frozen out of the collector's passes; what comes later is not."""

import gc

from batch_conductor_service.cli.serve import settle_startup_heap


def _tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_objects_from_before_settling_leave_the_collected_generations() -> None:
    built_at_startup = {"graph": ["spellcheck", "nlp"]}
    try:
        settle_startup_heap()
        made_later = {"request": ["b1"]}
        assert gc.get_freeze_count() > 0
        assert not _tracked(built_at_startup)
        assert _tracked(made_later)
    finally:
        gc.unfreeze()
    assert _tracked(built_at_startup)
