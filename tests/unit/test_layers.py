"""Which layer imports which, read from the source: the layout is the architecture only if the
imports keep to it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "batch_conductor_service"
ROOT = "batch_conductor_service"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def sources(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


# The domain may use the contracts' names and pydantic/yaml to read its file, nothing that
# talks to the outside world and nothing of the service beyond itself.
DOMAIN_FORBIDDEN = ("redis", "asyncpg", "aiokafka", "quart", "dishka", "asyncio", "httpx")


@pytest.mark.parametrize("path", sources("domain"), ids=lambda p: p.name)
def test_the_domain_imports_only_itself_and_the_contracts(path: Path) -> None:
    for module in imported_modules(path):
        top = module.split(".")[0]
        assert top not in DOMAIN_FORBIDDEN, f"{path.name} imports {module}"
        if top == ROOT:
            assert module.startswith(f"{ROOT}.domain."), f"{path.name} imports {module}"


@pytest.mark.parametrize("path", sources("stores/redis"), ids=lambda p: p.name)
def test_the_redis_store_does_not_know_the_postgresql_store(path: Path) -> None:
    for module in imported_modules(path):
        assert not module.startswith(f"{ROOT}.stores.postgres"), f"{path.name} imports {module}"
        assert not module.startswith(f"{ROOT}.stores.durable"), f"{path.name} imports {module}"


@pytest.mark.parametrize("layer", ["domain", "stores", "consumer", "dead_letter"])
def test_inner_layers_do_not_import_the_http_api(layer: str) -> None:
    for path in sources(layer):
        for module in imported_modules(path):
            assert not module.startswith(f"{ROOT}.api"), f"{path} imports {module}"


def test_no_source_file_is_over_250_lines() -> None:
    roots = [PACKAGE, PACKAGE.parents[1] / "libs"]
    long = {
        str(path): lines
        for root in roots
        for path in root.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 250
    }
    assert long == {}


def test_at_most_eight_modules_sit_directly_in_the_package() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 8
