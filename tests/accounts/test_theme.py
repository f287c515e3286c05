"""The colour theme switch: anyone may pick system, light or dark; the page's <html data-theme> follows at once."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Preference
from accounts.theme import SESSION_KEY, THEME_COOKIE

pytestmark = pytest.mark.django_db

THEME_URL = reverse("theme-set")
HOME = reverse("conversations:conversation-new")
DATA_THEME = re.compile(r'<html [^>]*data-theme="(\w+)"')


def page_theme(client, url: str = HOME) -> str:
    return DATA_THEME.search(client.get(url).content.decode())[1]


def test_a_visitor_gets_the_system_theme_and_keeps_a_choice_in_a_cookie(client):
    login = reverse("account_login")
    assert page_theme(client, login) == "system"

    response = client.post(THEME_URL, {"theme": "dark", "next": login})

    assert response.status_code == 302 and response["Location"] == login
    assert response.cookies[THEME_COOKIE].value == "dark"
    assert response.cookies[THEME_COOKIE]["httponly"]
    assert page_theme(client, login) == "dark"


def test_a_signed_in_users_choice_is_saved_and_follows_them_to_another_device(client, alice):
    client.force_login(alice)

    client.post(THEME_URL, {"theme": "light", "next": HOME})

    assert Preference.objects.get(user=alice).theme == "light"
    assert page_theme(client) == "light"
    other_device = Client()
    other_device.force_login(alice)
    assert page_theme(other_device) == "light"


def test_a_users_saved_theme_wins_over_a_cookie_left_by_someone_else(client, alice):
    Preference.objects.create(user=alice, theme="dark")
    client.cookies[THEME_COOKIE] = "light"
    client.force_login(alice)

    assert page_theme(client) == "dark"


def test_a_session_from_before_the_choice_reads_it_once(client, alice):
    client.force_login(alice)
    Preference.objects.create(user=alice, theme="dark")
    session = client.session
    del session[SESSION_KEY]
    session.save()

    assert page_theme(client) == "dark"
    assert client.session[SESSION_KEY] == "dark"


def test_an_unknown_theme_is_refused_and_nothing_is_saved(client, alice):
    client.force_login(alice)

    response = client.post(THEME_URL, {"theme": "neon", "next": HOME})

    assert response.status_code == 400
    assert not Preference.objects.filter(user=alice).exists()
    assert THEME_COOKIE not in response.cookies


def test_next_outside_the_site_goes_home(client):
    response = client.post(THEME_URL, {"theme": "dark", "next": "https://attacker.example/"})

    assert response["Location"] == "/"


def test_the_switch_is_post_only(client):
    assert client.get(THEME_URL, {"theme": "dark"}).status_code == 405


def test_the_account_page_and_the_sidebar_offer_the_three_themes(client, alice):
    Preference.objects.create(user=alice, theme="dark")
    client.force_login(alice)

    account = client.get(reverse("account")).content.decode()
    home = client.get(HOME).content.decode()

    assert 'id="account-theme"' in account
    assert re.search(r'<input type="radio" name="theme" value="dark" checked>', account)
    assert len(re.findall(r'<input type="radio" name="theme" value="(system|light|dark)"', account)) == 3
    for value in ("system", "light", "dark"):
        pressed = "true" if value == "dark" else "false"
        assert f'name="theme" value="{value}"' in home
        assert re.search(rf'value="{value}" [^>]*aria-pressed="{pressed}"', home)


def test_the_sign_in_page_offers_the_switch_to_visitors(client):
    page = client.get(reverse("account_login")).content.decode()

    assert f'action="{THEME_URL}"' in page
