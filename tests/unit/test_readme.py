import re
from pathlib import Path

from batch_conductor_service.dev.settings import DevSettings
from batch_conductor_service.wiring.settings import ENV_PREFIX, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()

# A variable read straight from the environment, as the benches, the dev tools and the tests do
# (or named once as a module's constant, `..._VARIABLE = "BCS_..."`).
ENVIRON_READ = re.compile(
    r"""(?:environ\.get\(|environ\[|getenv\(|_VARIABLE = )\s*["'](BCS_[A-Z0-9_]+)["']"""
)


def read_from_environ() -> set[str]:
    found: set[str] = set()
    for folder in ("services", "bench", "tests"):
        for source in (REPO_ROOT / folder).rglob("*.py"):
            found.update(ENVIRON_READ.findall(source.read_text()))
    return found


def test_environ_reads_are_found() -> None:
    # The search itself: a bench variable it must see, and one the service reads directly.
    found = read_from_environ()
    assert {
        "BCS_BENCH_ROUNDS",
        "BCS_BENCH_REDIS_URL",
        "BCS_KAFKA_BOOTSTRAP_SERVERS",
        "BCS_TEST_REDIS_URL",
        "BCS_TEST_HYPOTHESIS",
    } <= found


def test_readme_documents_every_variable() -> None:
    documented = set(re.findall(r"^\| `(BCS_[A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    settings = {f"{ENV_PREFIX}{name}" for name in Settings.model_fields}
    dev_settings = {f"{ENV_PREFIX}{name}" for name in DevSettings.model_fields}
    assert documented == settings | dev_settings | read_from_environ()


def test_readme_names_the_two_set_up_commands() -> None:
    assert "make run " in README
    assert "make test " in README
