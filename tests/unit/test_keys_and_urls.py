"""Key building and URL normalisation."""

import pytest

from labs.keys import KeyBuilder
from labs.urls import asyncpg_dsn, redact, sqlalchemy_url


def test_tagged_keys_share_a_hash_tag() -> None:
    """Keys built with one tag carry it in braces, so they land in one cluster slot."""
    keys = KeyBuilder("rl")
    assert keys.tagged("tenant-7", "bucket", "api") == "rl:{tenant-7}:bucket:api"
    assert keys.key("a", 1) == "rl:a:1"
    assert keys.child("t1").key("x") == "rl:t1:x"


@pytest.mark.parametrize("prefix", ["", "a{b", "with space"])
def test_ambiguous_prefixes_are_refused(prefix: str) -> None:
    """A prefix that could break hash tags or key parsing is rejected."""
    with pytest.raises(ValueError, match="invalid key prefix"):
        KeyBuilder(prefix)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@h:5432/db",
        "postgresql://u:p@h:5432/db",
        "postgresql+asyncpg://u:p@h:5432/db",
    ],
)
def test_every_postgres_url_form_is_accepted(url: str) -> None:
    """Whatever form DATABASE_URL takes, each client gets the one it needs."""
    assert sqlalchemy_url(url) == "postgresql+asyncpg://u:p@h:5432/db"
    assert asyncpg_dsn(url) == "postgresql://u:p@h:5432/db"


def test_a_non_postgres_url_is_refused_without_leaking_its_password() -> None:
    """The error names the problem and hides the password."""
    with pytest.raises(ValueError, match=r"not a PostgreSQL URL: mysql://u:\*\*\*@h/db"):
        sqlalchemy_url("mysql://u:secret@h/db")


def test_redact_hides_only_the_password() -> None:
    """URLs shown to people never carry a password."""
    assert redact("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
