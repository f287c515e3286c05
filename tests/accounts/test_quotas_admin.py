"""The admin sets usage limits inline on a user or a group, and lists them all."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import UsageLimit

pytestmark = pytest.mark.django_db

_NO_INLINE_ROW = {
    "usage_limit-TOTAL_FORMS": "1",
    "usage_limit-INITIAL_FORMS": "0",
    "usage_limit-MIN_NUM_FORMS": "0",
    "usage_limit-MAX_NUM_FORMS": "1",
}


def _user_form(user, **extra) -> dict:
    return {
        "username": user.username,
        "email": user.email,
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **_NO_INLINE_ROW,
        **extra,
    }


def test_user_change_page_shows_the_limits_inline(admin_client, alice):
    response = admin_client.get(reverse("admin:auth_user_change", args=[alice.pk]))

    assert response.status_code == 200
    assert b"usage_limit-0-daily_tokens" in response.content


def test_user_add_page_still_works_without_the_inline(admin_client):
    response = admin_client.get(reverse("admin:auth_user_add"))

    assert response.status_code == 200
    assert b"usage_limit-" not in response.content


def test_limits_saved_inline_on_a_user_apply_to_that_user(admin_client, alice):
    data = _user_form(alice, **{"usage_limit-0-sends_per_minute": "5", "usage_limit-0-daily_tokens": "0"})

    response = admin_client.post(reverse("admin:auth_user_change", args=[alice.pk]), data)

    assert response.status_code == 302
    limit = UsageLimit.objects.get(user=alice)
    assert (limit.group, limit.sends_per_minute, limit.concurrent_replies, limit.daily_tokens) == (None, 5, None, 0)


def test_limits_saved_inline_on_a_group_apply_to_that_group(admin_client):
    group = Group.objects.create(name="teachers")
    data = {"name": "teachers", **_NO_INLINE_ROW, "usage_limit-0-daily_tokens": "200000"}

    response = admin_client.post(reverse("admin:auth_group_change", args=[group.pk]), data)

    assert response.status_code == 302
    assert UsageLimit.objects.get(group=group).daily_tokens == 200_000


def test_the_standalone_form_refuses_a_row_for_both_a_user_and_a_group(admin_client, alice):
    group = Group.objects.create(name="teachers")
    data = {"user": alice.pk, "group": group.pk, "sends_per_minute": "3"}

    response = admin_client.post(reverse("admin:accounts_usagelimit_add"), data)

    assert response.status_code == 200
    assert "Choose either a user or a group, not both." in response.content.decode()
    assert not UsageLimit.objects.exists()


def test_the_standalone_form_refuses_a_row_for_nobody(admin_client):
    response = admin_client.post(reverse("admin:accounts_usagelimit_add"), {"sends_per_minute": "3"})

    assert response.status_code == 200
    assert not UsageLimit.objects.exists()


def test_the_list_does_not_query_per_row(admin_client, alice, bob, django_assert_max_num_queries):
    url = reverse("admin:accounts_usagelimit_changelist")
    UsageLimit.objects.create(user=alice, sends_per_minute=1)
    UsageLimit.objects.create(group=Group.objects.create(name="g1"), daily_tokens=1)
    admin_client.get(url)  # Warm the session and the content types.
    with django_assert_max_num_queries(50) as captured:
        response = admin_client.get(url)
    few = len(captured)
    UsageLimit.objects.create(user=bob, sends_per_minute=2)
    UsageLimit.objects.create(group=Group.objects.create(name="g2"), daily_tokens=2)

    with django_assert_max_num_queries(few):
        response = admin_client.get(url)

    assert response.status_code == 200
    assert "g2" in response.content.decode() and "bob" in response.content.decode()
