import re
from pathlib import Path

from batch_conductor_service.wiring.settings import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    documented = set(re.findall(r"^\| `(BCS_[A-Z_]+)` \|", README, flags=re.MULTILINE))
    assert documented == {f"{ENV_PREFIX}{name}" for name in Settings.model_fields}


def test_readme_names_the_two_set_up_commands() -> None:
    assert "make run " in README
    assert "make test " in README
