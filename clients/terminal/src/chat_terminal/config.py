"""Where the client keeps the site's URL and the personal API key.

The key lives in ``<user config dir>/chat/config.json`` (``~/.config/chat/`` on Linux, honouring
``XDG_CONFIG_HOME``; platformdirs picks the right folder elsewhere), readable by its owner only
(file 0600, folder 0700). ``CHAT_URL`` and ``CHAT_API_KEY`` in the environment take precedence over
the file, so scripts and CI need no file at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "chat"


class ConfigError(Exception):
    """The site or the key is unknown or unreadable; the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    """A site's base URL (``https://chat.example.com``, no ``/v1``) and a personal API key."""

    url: str
    api_key: str

    def __repr__(self) -> str:  # the key never reaches a traceback or a log
        return f"Credentials(url={self.url!r}, api_key='***')"


def config_path() -> Path:
    """Return the path of the config file (it may not exist yet)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.json"


def history_path() -> Path:
    """Return the path of the prompt's line history (one file per user, kept across runs)."""
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)) / "history"


def normalize_url(url: str) -> str:
    """Return a site URL without a trailing slash or ``/v1`` (both are accepted from the user).

    Raises:
        ConfigError: the URL is not http(s).
    """
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{url or 'The URL'} is not an http:// or https:// address.")
    return url


def credentials_save(credentials: Credentials) -> Path:
    """Write the credentials to the config file, readable by the user only; return its path."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    data = json.dumps({"url": credentials.url, "api_key": credentials.api_key}, indent=2)
    # Created with 0600 from the start, so the key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(data + "\n")
    path.chmod(0o600)
    return path


def credentials_load(*, url: str | None = None) -> Credentials:
    """Return the credentials: ``url`` or ``CHAT_URL``, and ``CHAT_API_KEY``, over the config file.

    The saved key goes only to the site it was saved for: with another URL
    (``--url`` or ``CHAT_URL``) the key must come from ``CHAT_API_KEY``.

    Raises:
        ConfigError: no URL or key is known (the message names ``chat login``), or the file is unreadable.
    """
    stored: dict[str, str] = {}
    path = config_path()
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"Cannot read {path}: {error}. Run `chat login URL` again.") from error
        if isinstance(loaded, dict):
            stored = {key: value for key, value in loaded.items() if isinstance(value, str)}
    site = url or os.environ.get("CHAT_URL") or stored.get("url")
    saved_url = stored.get("url")
    saved_for_site = bool(site and saved_url) and normalize_url(saved_url or "") == normalize_url(site or "")
    api_key = os.environ.get("CHAT_API_KEY") or (stored.get("api_key") if saved_for_site else None)
    if not site or not api_key:
        raise ConfigError("No site configured: run `chat login URL`, or set CHAT_URL and CHAT_API_KEY.")
    return Credentials(url=normalize_url(site), api_key=api_key)
