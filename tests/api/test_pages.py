"""The API pages: keys on the account page and the API page (shown once, revoked, last use), the console key."""

import pytest
from django.urls import reverse

from api import auth, services
from api.models import ApiKey, GroupApiAccess

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize("name", ["api:page", "api:keys"])
def test_anonymous_visitors_are_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_account_page_loads_the_keys_section_and_links_the_api_page(client, alice):
    client.force_login(alice)
    html = client.get(reverse("account")).content.decode()
    assert 'id="account-api"' in html and reverse("api:keys") in html and reverse("api:page") in html


def test_creating_a_key_shows_it_once_and_stores_only_its_hash(client, alice):
    client.force_login(alice)
    response = client.post(reverse("api:keys"), {"name": "laptop"}, **HTMX)
    key = response.context["new_key"]
    row = ApiKey.objects.get(user=alice)
    assert key in response.content.decode() and row.name == "laptop" and key.startswith(row.prefix)
    assert key not in {row.key_hash, row.prefix} and row.key_hash == services.key_hash(key)
    assert auth.key_authenticate(presented=key) == alice
    again = client.get(reverse("api:keys"), **HTMX).content.decode()
    assert key not in again and row.prefix in again


def test_a_key_without_a_name_is_refused_with_a_message(client, alice):
    client.force_login(alice)
    response = client.post(reverse("api:keys"), {"name": "  "}, **HTMX)
    assert response.status_code == 400 and "Name the key" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_page_without_htmx_shows_the_new_key_on_the_api_page(client, alice, persona):
    client.force_login(alice)
    response = client.post(reverse("api:keys"), {"name": "laptop"})
    html = response.content.decode()
    assert response.context["new_key"] in html and 'id="api-console"' in html and persona.slug in html


def test_the_last_use_is_shown(client, alice):
    key = services.api_key_create(user=alice, name="ci")[1]
    auth.key_authenticate(presented=key)
    client.force_login(alice)
    html = client.get(reverse("api:keys"), **HTMX).content.decode()
    assert " ago" in html and "never" not in html


def test_revoking_a_key_refuses_it_and_keeps_it_listed(client, alice):
    row, key = services.api_key_create(user=alice, name="old")
    client.force_login(alice)
    html = client.post(reverse("api:key-revoke", args=[row.pk]), **HTMX).content.decode()
    assert 'class="revoked"' in html
    row.refresh_from_db()
    assert row.is_revoked
    with pytest.raises(auth.ApiError) as refused:
        auth.key_authenticate(presented=key)
    assert refused.value.status == 403


def test_another_users_key_cannot_be_revoked(client, alice, bob):
    row = services.api_key_create(user=bob, name="bob's")[0]
    client.force_login(alice)
    assert client.post(reverse("api:key-revoke", args=[row.pk]), **HTMX).status_code == 404
    row.refresh_from_db()
    assert not row.is_revoked


def test_the_keys_fragment_takes_a_fixed_number_of_queries(client, alice, django_assert_num_queries):
    for n in range(5):
        services.api_key_create(user=alice, name=f"key {n}")
    client.force_login(alice)
    client.get(reverse("api:keys"), **HTMX)  # The session is loaded; count the page's own reads.
    with django_assert_num_queries(4):  # session, user, keys, the site's and groups' API switches
        client.get(reverse("api:keys"), **HTMX)


def test_the_console_key_works_expires_and_is_not_listed(client, alice, settings):
    settings.CHAT_API_CONSOLE_KEY_S = 120
    client.force_login(alice)
    body = client.post(reverse("api:console-key")).json()
    assert auth.key_authenticate(presented=body["key"]) == alice
    row = ApiKey.objects.get(user=alice)
    assert row.expires_at is not None and (row.expires_at - row.created_at).total_seconds() == pytest.approx(120, abs=2)
    assert row.prefix not in client.get(reverse("api:keys"), **HTMX).content.decode()


def test_the_console_key_is_refused_when_the_api_is_off_for_the_user(client, alice, settings):
    settings.CHAT_API_ENABLED = False
    client.force_login(alice)
    response = client.post(reverse("api:console-key"))
    assert response.status_code == 403 and not ApiKey.objects.exists()
    assert "switched the API off" in client.get(reverse("api:keys"), **HTMX).content.decode()


def test_a_group_switched_off_shows_on_the_page(client, alice):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="guests")
    alice.groups.add(group)
    GroupApiAccess.objects.create(group=group, enabled=False)
    client.force_login(alice)
    assert "switched the API off" in client.get(reverse("api:page")).content.decode()
