import pytest

from batch_conductor_service.stores.factory import apply_concurrency
from tests.unit.conftest import unit_settings


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, 16),
        ({"REDIS_MAX_CONNECTIONS": 10}, 5),
        ({"REDIS_MAX_CONNECTIONS": 1}, 1),
        ({"DATABASE_URL": "postgresql://db/x", "DATABASE_POOL_MAX_SIZE": 4}, 4),
    ],
)
def test_ingestion_leaves_connections_for_define(
    settings: dict[str, object], expected: int
) -> None:
    assert apply_concurrency(unit_settings(**settings)) == expected
