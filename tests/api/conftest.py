"""Fixtures for the API: the site in a daphne process, alice's personal key, the openai SDK pointed at the site."""

import openai
import pytest

from api import services
from tests.servers import DaphneServer


@pytest.fixture(scope="module")
def api_server(django_db_setup, fake_upstream):
    """The site in a daphne process for the tests of one module, on the test database (no upstream retries)."""
    with DaphneServer(env={"CHAT_UPSTREAM_RETRIES": "0", "CHAT_API_MAX_MESSAGES": "1000"}) as server:
        yield server


@pytest.fixture
def site(api_server, transactional_db):
    """The module's server, for a test whose committed rows are flushed after it (see tests/e2e/conftest.py)."""
    return api_server


@pytest.fixture
def alice_key(alice) -> str:
    """A personal API key of alice's, as she would paste it."""
    return services.api_key_create(user=alice, name="laptop")[1]


@pytest.fixture
def sdk(site, alice_key) -> openai.OpenAI:
    """The real openai SDK on the site's /v1 with alice's key; no retries, so each error is seen as answered."""
    with openai.OpenAI(base_url=site.url("/v1"), api_key=alice_key, max_retries=0, timeout=30) as sdk:
        yield sdk


@pytest.fixture
async def async_sdk(site, alice_key) -> openai.AsyncOpenAI:
    async with openai.AsyncOpenAI(base_url=site.url("/v1"), api_key=alice_key, max_retries=0, timeout=30) as sdk:
        yield sdk


@pytest.fixture
def make_key():
    """Return a factory of keys: `make_key(user)` -> the key string."""

    def make(user, **fields) -> str:
        return services.api_key_create(user=user, name=fields.pop("name", "key"), **fields)[1]

    return make
