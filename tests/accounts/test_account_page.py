"""The account page: signed-in only, linked from the sidebar, leading to the sign-in settings."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_account_page_asks_a_visitor_to_sign_in(client):
    response = client.get(reverse("account"))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_the_sidebar_links_to_the_account_page_which_links_to_password_and_email(client, django_user_model):
    user = django_user_model.objects.create_user("ada", password="pw-long-enough-1")
    client.force_login(user)
    home = client.get(reverse("conversations:conversation-new")).content.decode()
    assert f'href="{reverse("account")}"' in home
    page = client.get(reverse("account")).content.decode()
    assert reverse("account_change_password") in page
    assert reverse("account_email") in page


@pytest.mark.parametrize("page", ["account_change_password", "account_email"])
def test_the_password_and_email_pages_lead_back_to_the_account_page_and_the_chats(client, django_user_model, page):
    user = django_user_model.objects.create_user("ada", password="pw-long-enough-1")
    client.force_login(user)
    html = client.get(reverse(page)).content.decode()
    assert f'id="back-to-account" href="{reverse("account")}"' in html
    assert f'href="{reverse("conversations:conversation-new")}"' in html
