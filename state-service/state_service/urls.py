"""Database URLs: parsed once, checked before use, and printed only with every credential hidden.

libpq and SQLAlchemy take a password in three places: `user:password@`, the query parameter
`password`, and `sslpassword` (the client key's passphrase). All three are masked in every URL
state-service prints and in every error text that could echo them. A `passfile` is a path: it
is shown as given and its contents are never read into a message.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from state_service.errors import StateServiceError

MASK = "***"
SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


class UnusableUrl(StateServiceError):
    """The database URL does not parse, names an unknown database, or its driver is missing."""


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL, `postgresql://` meaning psycopg 3; UnusableUrl if it does not parse."""
    try:
        sa_url = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # SQLAlchemy's message repeats the whole URL, password included: say it our way.
        raise UnusableUrl(
            f"database URL {display_url(url)} does not parse: expected "
            "dialect[+driver]://user@host/database, e.g. postgresql://user@host/db"
        ) from None
    if sa_url.drivername in ("postgresql", "postgres"):
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    return sa_url


def check_usable(url: str) -> URL:
    """Parse ``url`` and load its dialect and driver, so a bad URL fails before any work."""
    sa_url = parse_url(url)
    try:
        sa_url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise UnusableUrl(f"database URL {display_url(url)}: unknown database type") from None
    except ImportError as exc:
        raise UnusableUrl(
            f"database URL {display_url(url)}: its driver is not installed ({exc.name or exc}); "
            "use sqlite:///PATH or postgresql://…, or install the driver"
        ) from None
    return sa_url


def display_url(url: str | URL) -> str:
    """The URL with every password form replaced by ``***``; safe to print and to show."""
    try:
        sa_url = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        scheme = url.partition("://")[0] if isinstance(url, str) and "://" in url else ""
        return f"{scheme}://(unparsed)" if scheme.isidentifier() else "(unparsed URL)"
    shown = sa_url.set(query={}).render_as_string(hide_password=True)
    pairs = []
    for key, values in sa_url.query.items():
        for value in [values] if isinstance(values, str) else values:
            readable = MASK if key.lower() in SECRET_QUERY_KEYS else quote(value, safe="/:,@")
            pairs.append(f"{quote(key)}={readable}")
    return f"{shown}?{'&'.join(pairs)}" if pairs else shown


def secrets_in(url: str) -> list[str]:
    """The password values a URL carries (for scrubbing error texts), longest first."""
    try:
        sa_url = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return [url]  # a URL we cannot read: hide it whole
    found = [sa_url.password or ""]
    for key, value in sa_url.query.items():
        if key.lower() in SECRET_QUERY_KEYS:
            found.extend([value] if isinstance(value, str) else value)
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's passwords (and the raw URL itself) replaced by ``***``."""
    text = text.replace(url, display_url(url))
    for secret in secrets_in(url):
        text = text.replace(secret, MASK)
    return text
