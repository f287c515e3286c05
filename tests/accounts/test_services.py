import pytest

from accounts.services import user_promote_if_first

pytestmark = pytest.mark.django_db


def test_the_only_account_becomes_staff_and_superuser(alice):
    returned = user_promote_if_first(user=alice)

    alice.refresh_from_db()
    assert returned == alice
    assert alice.is_staff and alice.is_superuser


def test_a_later_account_stays_an_ordinary_user(alice, bob):
    returned = user_promote_if_first(user=bob)

    bob.refresh_from_db()
    assert returned == bob
    assert not bob.is_staff and not bob.is_superuser


def test_promoting_the_second_account_leaves_the_first_alone(alice, bob):
    user_promote_if_first(user=bob)

    alice.refresh_from_db()
    assert not alice.is_staff and not alice.is_superuser
