"""The API's site-wide switch: the admin's (Site settings, "API on") and the server's override CHAT_API_ENABLED."""

import httpx2
import pytest
from django.urls import reverse

from accounts.selectors import site_settings
from api import auth
from api.errors import ApiError

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]


def switch_api(admin_client, *, on: bool) -> None:
    """Tick or untick "API on" on the admin's Site settings page and save, as the admin does."""
    row = site_settings()
    form = {"signup_mode": row.signup_mode, "signup_domains": row.signup_domains}
    if on:
        form["api_enabled"] = "on"
    response = admin_client.post(reverse("admin:accounts_sitesettings_change", args=[row.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]


def call(site, key: str, path: str, **kwargs) -> httpx2.Response:
    method = httpx2.post if "json" in kwargs else httpx2.get
    return method(site.url(path), headers={"Authorization": f"Bearer {key}"}, timeout=30, **kwargs)


def test_the_admin_switches_the_api_off_for_the_site_and_on_again(site, admin_client, alice_key, persona):
    completion = {"model": persona.slug, "messages": HELLO}
    switch_api(admin_client, on=False)
    assert site_settings().api_enabled is False
    for path, kwargs in (("/v1/models", {}), ("/v1/chat/completions", {"json": completion})):
        response = call(site, alice_key, path, **kwargs)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["type"] == "permission_error" and error["code"] == "api_disabled_for_site"
        assert "switched off for this site" in error["message"]

    switch_api(admin_client, on=True)
    assert call(site, alice_key, "/v1/models").status_code == 200
    assert call(site, alice_key, "/v1/chat/completions", json=completion).status_code == 200


def test_the_server_setting_forces_the_api_off_whatever_the_admin_says(alice, make_key, settings):
    key = make_key(alice)
    assert site_settings().api_enabled is True
    settings.CHAT_API_ENABLED = False
    with pytest.raises(ApiError) as refused:
        auth.key_authenticate(presented=key)
    assert refused.value.code == "api_disabled_for_site" and refused.value.status == 403
    assert not auth.api_enabled_for(user=alice)
    settings.CHAT_API_ENABLED = True
    assert auth.key_authenticate(presented=key) == alice and auth.api_enabled_for(user=alice)


def test_the_admin_page_says_when_the_server_setting_keeps_the_api_off(admin_client, settings):
    settings.CHAT_API_ENABLED = False
    page = admin_client.get(reverse("admin:accounts_sitesettings_change", args=[site_settings().pk]))
    assert "keeps the API off for the whole site" in page.content.decode()
    settings.CHAT_API_ENABLED = True
    page = admin_client.get(reverse("admin:accounts_sitesettings_change", args=[site_settings().pk]))
    assert "keeps the API off for the whole site" not in page.content.decode()


def test_the_switched_off_site_shows_on_the_api_page(client, alice):
    row = site_settings()
    row.api_enabled = False
    row.save()
    client.force_login(alice)
    assert "switched the API off" in client.get(reverse("api:page")).content.decode()
    assert client.post(reverse("api:console-key")).status_code == 403


def test_the_key_check_is_one_query_with_every_switch(alice, make_key, django_assert_num_queries):
    key = make_key(alice)
    site_settings()  # The row exists, as on any site whose admin has opened it.
    auth.key_authenticate(presented=key)  # Records the first use (one more query, once a minute).
    with django_assert_num_queries(1):
        assert auth.key_authenticate(presented=key) == alice
