"""Custom instructions on the account page: shown, saved, cleared, limited in length, the user's own."""

import pytest

from accounts.models import CustomInstructions

pytestmark = pytest.mark.django_db

URL = "/account/instructions/"
HTMX = {"HX-Request": "true"}


def test_the_account_page_loads_the_section(client, alice):
    client.force_login(alice)

    page = client.get("/account/").text

    assert 'id="account-instructions"' in page
    assert f'hx-get="{URL}"' in page


def test_saving_and_clearing_instructions(client, alice, bob):
    client.force_login(alice)

    response = client.post(URL, {"about_me": " I teach biology. ", "reply_style": "Short."}, headers=HTMX)

    assert response.status_code == 200 and "Saved." in response.text
    row = CustomInstructions.objects.get(user=alice)
    assert (row.about_me, row.reply_style) == ("I teach biology.", "Short.")
    assert "I teach biology." in client.get(URL, headers=HTMX).text
    client.force_login(bob)
    assert "I teach biology." not in client.get(URL, headers=HTMX).text
    client.force_login(alice)
    client.post(URL, {"about_me": "", "reply_style": ""}, headers=HTMX)
    row.refresh_from_db()
    assert (row.about_me, row.reply_style) == ("", "")


def test_a_text_over_the_limit_is_refused_and_nothing_changes(client, alice):
    client.force_login(alice)

    response = client.post(URL, {"about_me": "x" * (CustomInstructions.MAX_CHARS + 1)}, headers=HTMX)

    assert response.status_code == 400
    assert not CustomInstructions.objects.exists()


def test_a_plain_post_goes_back_to_the_account_page(client, alice):
    client.force_login(alice)

    response = client.post(URL, {"about_me": "Hi", "reply_style": ""})

    assert response.status_code == 302 and response["Location"] == "/account/"
