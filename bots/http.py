"""The HTTP calls to the platforms' APIs: one client per event loop, retries with backoff, and logs without secrets.

Platforms answer with JSON envelopes (Feishu `{"code": 0, ...}`, WeChat
`{"errcode": 0, ...}`); callers read the envelope. Transport errors, 429 and
5xx answers are retried `settings.BOTS_API_RETRIES` times, waiting 0.5 s,
1 s, 2 s ... (`BOTS_API_BACKOFF_MS` doubled each time); every retry is logged
with the URL's path only, since WeChat puts the access token in the query.
"""

import asyncio
import json as jsonlib
import logging
import weakref
from typing import Any
from urllib.parse import urlsplit

import httpx2
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient]" = weakref.WeakKeyDictionary()


class PlatformError(Exception):
    """A platform API call failed: unreachable, an HTTP error, or not JSON. `status` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _client() -> httpx2.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = httpx2.AsyncClient(timeout=settings.BOTS_API_TIMEOUT_S, follow_redirects=False)
        _clients[loop] = client
    return client


async def request_json(
    method: str,
    url: str,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    """Call a platform API and return its JSON object body, retrying transport errors, 429 and 5xx.

    Raises:
        PlatformError: still failing after the retries, a 4xx other than 429,
            or a body that is not a JSON object.
    """
    path = urlsplit(url).path
    headers = dict(headers or {})
    content = None
    if json is not None:
        # Unescaped UTF-8: WeChat shows \uXXXX escapes in a message literally.
        content = jsonlib.dumps(json, ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    retries = settings.BOTS_API_RETRIES
    for attempt in range(retries + 1):
        try:
            response = await _client().request(method, url, content=content, params=params, headers=headers)
        except httpx2.HTTPError as exc:
            error = PlatformError(f"{method} {path}: {type(exc).__name__}")
        else:
            if response.status_code == 429 or response.status_code >= 500:
                error = PlatformError(f"{method} {path}: HTTP {response.status_code}", status=response.status_code)
            elif response.status_code >= 400:
                raise PlatformError(f"{method} {path}: HTTP {response.status_code}", status=response.status_code)
            else:
                try:
                    body = response.json()
                except ValueError:
                    raise PlatformError(f"{method} {path}: the answer is not JSON") from None
                if not isinstance(body, dict):
                    raise PlatformError(f"{method} {path}: the answer is not a JSON object")
                return body
        if attempt == retries:
            logger.warning("Platform call failed, giving up: %s", error)
            raise error
        wait_s = settings.BOTS_API_BACKOFF_MS / 1000 * 2**attempt
        logger.warning("Platform call failed, retrying in %.1f s: %s", wait_s, error)
        await asyncio.sleep(wait_s)
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


class TokenApi:
    """A platform API client whose access token is cached until shortly before it expires.

    The token is kept in Django's cache (shared by every process with
    REDIS_URL) under `bots:<kind>-token:<cache_key>` until
    `settings.BOTS_TOKEN_REFRESH_MARGIN_S` before it expires, and fetched
    again at once when asked `fresh` (an API call said it is invalid).
    Subclasses set `kind` and implement `fetch_token`.
    """

    kind = ""

    def __init__(self, *, base_url: str, app_id: str, app_secret: str, cache_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._app_secret = app_secret
        self.cache_key = f"bots:{self.kind}-token:{cache_key}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, app_id={self.app_id!r})"

    async def fetch_token(self) -> tuple[str, int]:
        """Fetch a new access token; return it and its lifetime in seconds.

        Raises:
            PlatformError: unreachable, or refused (the platform's code and message).
        """
        raise NotImplementedError

    async def token(self, *, fresh: bool = False) -> str:
        """Return the cached access token, fetching a new one when missing, near expiry or `fresh`."""
        token = None if fresh else await cache.aget(self.cache_key)
        if token is None:
            token, expire_s = await self.fetch_token()
            await cache.aset(self.cache_key, token, max(expire_s - settings.BOTS_TOKEN_REFRESH_MARGIN_S, 1))
        return token
