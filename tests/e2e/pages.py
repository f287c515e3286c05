"""Steps the browser tests share."""

import re

from playwright.sync_api import BrowserContext, Page, expect

from tests.servers import session_cookie


def open_new_chat(page: Page, persona) -> None:
    """Click `persona`'s card on the persona picker and wait until its new chat takes a message.

    The card is a plain GET form, so the chat is a page load: its composer
    shows while the page is still parsed, before the deferred scripts (htmx,
    chat.js) have run, and an Enter pressed then only adds a line. The load
    event comes after them.
    """
    page.click(f"button.persona-card[data-persona='{persona.slug}']")
    expect(page).to_have_url(re.compile(rf"/\?persona={re.escape(persona.slug)}$"))  # Saved at the first send.
    page.wait_for_load_state("load")


def sign_in(context: BrowserContext, site, user) -> None:
    """Sign `user` in for every page of `context`: the session cookie of a session saved for them."""
    name, value = session_cookie(user).split("=", 1)
    context.add_cookies([{"name": name, "value": value, "url": site.url("/")}])
