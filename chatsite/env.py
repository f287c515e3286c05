"""Typed readers for settings that come from the environment.

Each helper names the variable in the `ImproperlyConfigured` it raises, so a
bad deployment value is reported at start-up rather than at first use.
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """Return the variable `name` as a stripped string, or `default` when unset."""
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    """Return the variable `name` as a bool (1/true/yes/on, 0/false/no/off).

    Raises:
        ImproperlyConfigured: the value is none of those words.
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """Return the variable `name` as an int, at least `minimum` when given.

    Raises:
        ImproperlyConfigured: the value is not an integer or is below `minimum`.
    """
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return the comma-separated variable `name` as a list of non-empty items."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_database(name: str, default: dict) -> dict:
    """Return a Django DATABASES entry from the URL in `name` (dj-database-url); sqlite:// gets `chatsite.sqlite`.

    Raises:
        ImproperlyConfigured: the URL cannot be parsed or names an unsupported engine.
    """
    import dj_database_url

    raw = env_str(name)
    if not raw:
        return default
    try:
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
    engine = {
        "django.db.backends.postgresql": "django.db.backends.postgresql",
        "django.db.backends.sqlite3": "chatsite.sqlite",  # Django's, its writers taking turns (chatsite/sqlite).
    }.get(config.get("ENGINE", ""))
    if engine is None:
        raise ImproperlyConfigured(f"{name} must be a postgres:// or sqlite:// URL.")
    return {**config, "ENGINE": engine}  # A plain dict like `default`: dj-database-url types its result as a TypedDict.


# The schemes of DJANGO_EMAIL_URL (django-environ's names) and their port when the URL names none.
_EMAIL_SCHEMES = {"smtp": 25, "smtp+tls": 587, "smtps": 587, "smtp+ssl": 465, "consolemail": None}


def env_email(name: str) -> dict:
    """Return Django's EMAIL_* settings from the mail server URL in `name` (django-environ's parser); {} when unset.

    ``smtp://user:password@host:port`` (plain), ``smtp+tls://`` (STARTTLS,
    port 587 by default), ``smtp+ssl://`` (TLS from the start, port 465),
    ``consolemail://`` (print mails to the server's log). Special characters
    in the user or password are percent-encoded (``@`` is ``%40``).

    Returns:
        The keys EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
        EMAIL_HOST_PASSWORD, EMAIL_USE_TLS and EMAIL_USE_SSL, for an SMTP URL.

    Raises:
        ImproperlyConfigured: another scheme, or an SMTP URL without a host.
    """
    import environ  # type: ignore[import-untyped]  # django-environ publishes no types

    raw = env_str(name)
    if not raw:
        return {}
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme not in _EMAIL_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} must be an smtp://, smtp+tls://, smtp+ssl:// or consolemail:// URL, not {scheme or raw!r}."
        )
    config = environ.Env.email_url_config(raw)
    if scheme == "consolemail":
        return {"EMAIL_BACKEND": config["EMAIL_BACKEND"]}
    if not config.get("EMAIL_HOST"):
        raise ImproperlyConfigured(f"{name} names no mail server host.")
    return {
        "EMAIL_BACKEND": config["EMAIL_BACKEND"],
        "EMAIL_HOST": config["EMAIL_HOST"],
        "EMAIL_PORT": config.get("EMAIL_PORT") or _EMAIL_SCHEMES[scheme],
        "EMAIL_HOST_USER": config.get("EMAIL_HOST_USER") or "",
        "EMAIL_HOST_PASSWORD": config.get("EMAIL_HOST_PASSWORD") or "",
        "EMAIL_USE_TLS": bool(config.get("EMAIL_USE_TLS")),
        "EMAIL_USE_SSL": bool(config.get("EMAIL_USE_SSL")),
    }
