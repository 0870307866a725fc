"""Which layer imports which, read from the source: the layout is the architecture only if the
imports keep to it."""

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "services" / "batch_conductor_service"
LIBS = REPO / "libs"
ROOT = "batch_conductor_service"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """Each import of the file: the module, and the names taken from it (none for `import m`).
    A relative import is refused: every rule below reads absolute module names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path} has a relative import"
            assert node.module is not None
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def imported_modules(path: Path) -> set[str]:
    return {module for module, _ in imports(path)}


def name(path: Path) -> str:
    return str(path.relative_to(REPO))


def sources(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def of_layers(*layers: str) -> list[Path]:
    return [path for layer in layers for path in sources(layer)]


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def test_the_layers_checked_here_exist() -> None:
    # A rule over a layer that was renamed away would pass for want of files.
    for layer in ("domain", "stores", "stores/redis", "consumer", "api", "dead_letter", "wiring"):
        assert sources(layer), f"no sources under {layer}"
    assert (PACKAGE / "consumer" / "translation.py").is_file()


# The domain may use the contracts' names and pydantic/yaml to read its file, nothing that
# talks to the outside world and nothing of the service beyond itself.
DOMAIN_FORBIDDEN = ("redis", "asyncpg", "aiokafka", "quart", "dishka", "asyncio", "httpx")


@pytest.mark.parametrize("path", sources("domain"), ids=lambda p: p.name)
def test_the_domain_imports_only_itself_and_the_contracts(path: Path) -> None:
    for module in imported_modules(path):
        top = module.split(".")[0]
        assert top not in DOMAIN_FORBIDDEN, f"{path.name} imports {module}"
        assert top != "huleedu_service_libs", f"{path.name} imports {module}"
        if top == ROOT:
            assert within(module, f"{ROOT}.domain"), f"{path.name} imports {module}"


@pytest.mark.parametrize("path", sources("stores/redis"), ids=lambda p: p.name)
def test_the_redis_store_does_not_know_the_postgresql_store(path: Path) -> None:
    for module in imported_modules(path):
        assert not within(module, f"{ROOT}.stores.postgres", f"{ROOT}.stores.durable"), (
            f"{path.name} imports {module}"
        )


@pytest.mark.parametrize("layer", ["domain", "stores", "consumer", "dead_letter"])
def test_inner_layers_do_not_import_the_http_api(layer: str) -> None:
    for path in sources(layer):
        for module in imported_modules(path):
            assert not within(module, f"{ROOT}.api"), f"{path} imports {module}"


@pytest.mark.parametrize("path", of_layers("api", "consumer", "dead_letter"), ids=name)
def test_the_api_and_the_consumer_reach_the_stores_only_through_the_protocols(path: Path) -> None:
    for module in imported_modules(path):
        assert not within(module, f"{ROOT}.stores"), f"{path} imports {module}"


def test_the_resolution_service_reaches_the_stores_only_through_the_protocols() -> None:
    for module in imported_modules(PACKAGE / "resolution_service.py"):
        assert not within(module, f"{ROOT}.stores", f"{ROOT}.consumer", f"{ROOT}.api")


@pytest.mark.parametrize("layer", ["stores", "consumer"])
def test_the_stores_and_the_consumer_do_not_know_each_other(layer: str) -> None:
    other = {"stores": "consumer", "consumer": "stores"}[layer]
    for path in sources(layer):
        for module in imported_modules(path):
            assert not within(module, f"{ROOT}.{other}"), f"{path} imports {module}"


@pytest.mark.parametrize(
    "path",
    [*of_layers("domain", "stores", "consumer", "api", "dead_letter"), *PACKAGE.glob("*.py")],
    ids=name,
)
def test_only_the_composition_root_and_the_commands_import_the_wiring(path: Path) -> None:
    for module in imported_modules(path):
        assert not within(module, f"{ROOT}.wiring"), f"{path} imports {module}"


# What any module may take from common_core.events: the shared building blocks and the
# dead-letter record. The platform's event payloads are read in consumer/translation.py alone
# (and written by dev/, which publishes sample events).
SHARED_EVENT_NAMES = frozenset({"DeadLetterRecord", "DeadLetterReason"})
SHARED_EVENT_MODULES = ("common_core.events.building_blocks", "common_core.events.dead_letter")
READS_PLATFORM_EVENTS = {PACKAGE / "consumer" / "translation.py"}


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "dev"),
    ids=name,
)
def test_only_the_translation_reads_the_platform_event_formats(path: Path) -> None:
    if path in READS_PLATFORM_EVENTS:
        return
    for module, names in imports(path):
        if not within(module, "common_core.events") or within(module, *SHARED_EVENT_MODULES):
            continue
        assert module == "common_core.events", f"{path} imports {module}"
        assert set(names) <= SHARED_EVENT_NAMES, f"{path} imports {names} from {module}"


def test_the_translation_does_read_the_platform_event_formats() -> None:
    # The rule above means something only while the translation is where the formats are read.
    for path in READS_PLATFORM_EVENTS:
        assert "common_core.events" in imported_modules(path)


@pytest.mark.parametrize("path", sorted(LIBS.rglob("*.py")), ids=name)
def test_the_libraries_import_nothing_of_the_service(path: Path) -> None:
    for module in imported_modules(path):
        assert not within(module, ROOT), f"{path} imports {module}"


# The contracts: the platform's enums, topics, envelope and payload models, the dead-letter
# record. Nothing that consumes, stores or serves: only pydantic and the standard library.
CONTRACT_IMPORTS = frozenset({"common_core", "pydantic", "pydantic_core", "typing_extensions"})


@pytest.mark.parametrize("path", sorted((LIBS / "common_core").rglob("*.py")), ids=name)
def test_common_core_holds_contracts_only(path: Path) -> None:
    for module in imported_modules(path):
        top = module.split(".")[0]
        assert top in CONTRACT_IMPORTS or top in sys.stdlib_module_names, f"{path} imports {module}"
