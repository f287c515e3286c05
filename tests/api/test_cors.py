"""CORS on /v1: off unless the admin lists origins (CHAT_API_CORS_ORIGINS); never with credentials."""

import httpx2
import pytest

from tests.servers import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)

LISTED = "https://tools.example.com"


@pytest.fixture(scope="module")
def api_server(django_db_setup, fake_upstream):
    with DaphneServer(env={"CHAT_API_CORS_ORIGINS": LISTED}) as server:
        yield server


def test_a_listed_origin_gets_the_cors_headers_and_no_credentials(site, alice_key, persona):
    preflight = httpx2.options(
        site.url("/v1/chat/completions"),
        headers={"Origin": LISTED, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == LISTED
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    response = httpx2.get(site.url("/v1/models"), headers={"Origin": LISTED, "Authorization": f"Bearer {alice_key}"})
    assert response.headers["Access-Control-Allow-Origin"] == LISTED
    assert "X-Conversation-Id" in response.headers["Access-Control-Expose-Headers"]


def test_another_origin_gets_no_cors_headers(site, alice_key):
    for response in (
        httpx2.options(site.url("/v1/models"), headers={"Origin": "https://evil.example"}),
        httpx2.get(
            site.url("/v1/models"), headers={"Origin": "https://evil.example", "Authorization": f"Bearer {alice_key}"}
        ),
    ):
        assert "Access-Control-Allow-Origin" not in response.headers
