"""Normalising the server URLs users pass in, so each client gets the form it needs.

`DATABASE_URL` may be written `postgres://`, `postgresql://` or with a SQLAlchemy
driver (`postgresql+asyncpg://`); SQLAlchemy needs the asyncpg form, asyncpg the bare
one. Passwords are hidden whenever a URL is shown.
"""

from urllib.parse import urlsplit, urlunsplit

_POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")


def _split_postgres(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _POSTGRES_SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: {redact(url)} (expected postgresql://...)")
    return scheme, rest


def sqlalchemy_url(url: str) -> str:
    """Return `url` with the asyncpg driver that SQLAlchemy's async engine needs."""
    _, rest = _split_postgres(url)
    return f"postgresql+asyncpg://{rest}"


def asyncpg_dsn(url: str) -> str:
    """Return `url` in the plain `postgresql://` form that asyncpg accepts."""
    _, rest = _split_postgres(url)
    return f"postgresql://{rest}"


def redact(url: str) -> str:
    """Return `url` with any password replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
