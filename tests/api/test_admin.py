"""The admin's view of the API: every user's keys (never the key itself), revoking them, the per-group switch."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from api import auth, services
from api.models import ApiKey, GroupApiAccess

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-password-1")
    client.force_login(admin)
    return client


def test_the_admin_lists_every_users_keys_by_prefix_never_the_key(admin_client, alice, bob):
    alices = services.api_key_create(user=alice, name="alice laptop")[1]
    services.api_key_create(user=bob, name="bob ci")
    html = admin_client.get(reverse("admin:api_apikey_changelist")).content.decode()
    assert "alice laptop" in html and "bob ci" in html and alices[:11] in html
    assert alices not in html and ApiKey.objects.get(user=alice).key_hash not in html


def test_the_admin_revokes_selected_keys(admin_client, alice):
    row, key = services.api_key_create(user=alice, name="leaked")
    response = admin_client.post(
        reverse("admin:api_apikey_changelist"), {"action": "revoke", "_selected_action": [row.pk]}, follow=True
    )
    assert "1 key revoked." in response.content.decode()
    with pytest.raises(auth.ApiError) as refused:
        auth.key_authenticate(presented=key)
    assert refused.value.code == "revoked_api_key"


def test_the_admin_cannot_add_a_key(admin_client):
    assert admin_client.get(reverse("admin:api_apikey_add")).status_code == 403


def test_a_group_switched_on_again_lets_its_members_in(alice):
    key = services.api_key_create(user=alice, name="k")[1]
    group = Group.objects.create(name="class")
    alice.groups.add(group)
    switch = GroupApiAccess.objects.create(group=group, enabled=False)
    with pytest.raises(auth.ApiError):
        auth.key_authenticate(presented=key)
    switch.enabled = True
    switch.save()
    assert auth.key_authenticate(presented=key) == alice
