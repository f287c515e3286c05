"""Error pages: styled like the site, in its theme, with a way back; never Django's bare defaults."""

import re
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.views import defaults

pytestmark = pytest.mark.django_db

HOME = reverse("conversations:conversation-new")


def test_an_unknown_address_gets_the_sites_404_page_with_a_way_back(client, alice):
    client.force_login(alice)

    response = client.get("/no/such/page/")

    page = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in page
    assert f'href="{HOME}"' in page
    assert "css/site.css" in page and "favicon.svg" in page


def test_another_users_conversation_is_the_same_404_page(client, alice, bob, persona):
    from conversations import services

    conversation = services.conversation_create(owner=bob, persona=persona)
    client.force_login(alice)

    response = client.get(conversation.get_absolute_url())

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_the_404_page_follows_the_visitors_theme_and_offers_sign_in(client):
    client.cookies["chat_theme"] = "dark"

    page = client.get("/no/such/page/").content.decode()

    assert re.search(r'<html [^>]*data-theme="dark"', page)
    assert f'href="{reverse("account_login")}"' in page


def test_the_403_page_explains_and_leads_back(rf, alice):
    request = rf.get("/somewhere/")
    request.user = alice

    response = defaults.permission_denied(request, PermissionDenied("internal detail"))

    page = response.content.decode()
    assert response.status_code == 403
    assert "Not allowed" in page and f'href="{HOME}"' in page
    assert "internal detail" not in page


def test_the_500_page_renders_without_any_context_and_leads_back(rf):
    response = defaults.server_error(rf.get("/"))

    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on the server" in page
    assert 'href="/"' in page and "css/site.css" in page


def test_the_favicon_is_an_svg_linked_from_every_page(client):
    from django.contrib.staticfiles import finders

    path = finders.find("favicon.svg")

    assert path is not None and Path(path).read_text().startswith("<svg")
    assert 'rel="icon"' in client.get(reverse("account_login")).content.decode()


def test_a_refused_csrf_check_gets_a_styled_page_that_explains(alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post(reverse("theme-set"), {"theme": "dark"})

    page = response.content.decode()
    assert response.status_code == 403
    assert "The form has expired" in page and f'href="{HOME}"' in page
