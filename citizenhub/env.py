"""Reading configuration from environment variables, with errors that name the variable."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvironmentConfigError(ImproperlyConfigured):
    """A setting read from the environment is missing or malformed.

    manage.py, wsgi and celery print these as one line naming the variable, because an
    operator fixing a deployment needs the variable name, not a traceback.
    """

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvironmentConfigError(name, f"expected a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvironmentConfigError(name, f"expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise EnvironmentConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_env(name: str, default: str) -> dict:
    """Parse a DATABASE_URL into Django's DATABASES entry, accepting only engines we run."""
    raw = env_str(name, default) or default
    scheme = urlsplit(raw).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise EnvironmentConfigError(
            name,
            f"unsupported or missing scheme {scheme!r}; use postgresql://user@host:5432/db "
            "or sqlite:///path/to/db.sqlite3",
        )
    try:
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise EnvironmentConfigError(name, f"cannot be parsed ({exc})") from None
    if not config.get("NAME"):
        raise EnvironmentConfigError(name, "names no database (the path part is empty)")
    if scheme != "sqlite":
        try:
            port = urlsplit(raw).port
        except ValueError:
            raise EnvironmentConfigError(name, "has a port that is not a number") from None
        if port is not None and not 0 < port < 65536:
            raise EnvironmentConfigError(name, f"port {port} is out of range")
    return config


def redis_url_from_env(name: str) -> str | None:
    """Return a validated Redis URL, or None when the variable is unset or empty."""
    raw = env_str(name)
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise EnvironmentConfigError(name, "is not a valid URL (check the port)") from None
    if parts.scheme not in {"redis", "rediss"}:
        raise EnvironmentConfigError(
            name, f"unsupported scheme {parts.scheme!r}; use redis://host:6379/0"
        )
    if not parts.hostname:
        raise EnvironmentConfigError(name, "names no host; use redis://host:6379/0")
    if port is not None and not 0 < port < 65536:
        raise EnvironmentConfigError(name, f"port {port} is out of range")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise EnvironmentConfigError(name, f"database {db!r} must be a number, e.g. /0")
    return raw
