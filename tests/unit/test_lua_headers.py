"""Every Lua script in the lab documents its contract: KEYS, ARGV and what it returns."""

from pathlib import Path

import pytest

from labs.lua import header_problems, load

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in ROOT.rglob("*.lua") if ".venv" not in p.parts)


def test_the_lab_has_scripts_to_check() -> None:
    """The search below finds the lab's scripts (so the next test cannot pass vacuously)."""
    assert SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_opens_with_its_contract(script: Path) -> None:
    """The leading comment block names KEYS, ARGV and the return value."""
    assert header_problems(script.read_text()) == []


def test_a_script_without_a_contract_is_refused() -> None:
    """Loading a script whose header lacks the contract fails with what is missing."""
    assert header_problems("return 1\n") == [
        "no `KEYS` in the header",
        "no `ARGV` in the header",
        "no `return` in the header",
    ]


def test_load_computes_the_sha_redis_will_use() -> None:
    """The SHA is the SHA1 of the file's text, as SCRIPT LOAD would return."""
    script = load("labs.demos", "server_time")
    assert len(script.sha) == 40
    assert script.source.startswith("--")
