"""Files, models, instructions and own personas in Chromium, against the fake upstream.

An image sent to a vision model arrives upstream as an image_url part; a
PDF's text reaches the upstream, and one too large for the context window is
refused; another user cannot fetch a file's URL; a chat switches model
midway; custom instructions reach the system message; a user's own persona
is offered to its owner only.
"""

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import Page, expect

from accounts.models import CustomInstructions
from attachments.models import Attachment
from conversations import services
from personas.models import ChatModel, Persona
from tests.attachments import files
from tests.conftest import streamed_requests
from tests.e2e.pages import open_new_chat, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASSISTANT = "article.message[data-role=assistant]"
COMPOSER = "#composer textarea[name=message]"


def _log_in(page: Page, site, user) -> None:
    sign_in(page.context, site, user)


def _open(page: Page, site, user, conversation) -> None:
    _log_in(page, site, user)
    page.goto(site.url(conversation.get_absolute_url()))
    expect(page.locator("#composer")).to_be_visible()
    page.wait_for_function("() => document.querySelector('[ws-connect]') && htmx")


def _attach(page: Page, name: str, mime: str, data: bytes) -> None:
    page.set_input_files("#attach-input", files=[{"name": name, "mimeType": mime, "buffer": data}])


def _send(page: Page, text: str) -> None:
    page.locator(COMPOSER).fill(text)
    page.locator(COMPOSER).press("Enter")


def _replies_done(page: Page, count: int) -> None:
    expect(page.locator(f"{ASSISTANT}[data-status=complete]")).to_have_count(count, timeout=20_000)


def test_an_image_sent_to_a_vision_model_arrives_as_an_image_url_part(
    page, site, alice, make_persona, upstream, screenshot
):
    persona = make_persona("fake-vision")
    ChatModel.objects.filter(pk=persona.model_id).update(supports_images=True)
    conversation = services.conversation_create(owner=alice, persona=persona)
    _open(page, site, alice, conversation)

    _attach(page, "red.png", "image/png", files.png_bytes(80, 60))
    expect(page.locator("#composer-attachments li.attachment-image[data-attachment-id] img")).to_be_visible()
    screenshot("composer")
    _send(page, "What colour is this?")

    _replies_done(page, 2)  # the greeting and the reply
    expect(page.locator("article.message[data-role=user] .attachments img")).to_have_count(1)
    expect(page.locator("#composer-attachments li")).to_have_count(0)
    screenshot("sent")
    content = streamed_requests(upstream)[-1].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What colour is this?"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")


def test_the_composer_refuses_an_image_for_a_model_without_vision(page, site, alice, persona, upstream):
    conversation = services.conversation_create(owner=alice, persona=persona)
    _open(page, site, alice, conversation)

    _attach(page, "red.png", "image/png", files.png_bytes())

    expect(page.locator("#composer-alert")).to_contain_text("does not accept images")
    expect(page.locator("#composer-attachments li")).to_have_count(0)
    assert not Attachment.objects.exists()


def test_a_pdfs_text_reaches_the_upstream_and_a_pdf_too_large_is_refused(page, site, alice, make_persona, upstream):
    persona = make_persona("fake-small-window")
    ChatModel.objects.filter(pk=persona.model_id).update(context_window=4000)
    conversation = services.conversation_create(owner=alice, persona=persona)
    _open(page, site, alice, conversation)

    _attach(page, "facts.pdf", "application/pdf", files.pdf_bytes(["Quokkas live on Rottnest Island."]))
    expect(page.locator("#composer-attachments li.attachment-document[data-attachment-id]")).to_contain_text(
        "facts.pdf"
    )
    _send(page, "Summarise the file")
    _replies_done(page, 2)
    sent = streamed_requests(upstream)[-1].body["messages"][-1]["content"]
    assert sent.startswith('Summarise the file\n\n<document name="facts.pdf">')
    assert "Quokkas live on Rottnest Island." in sent
    expect(page.locator("article.message[data-role=user] .attachments")).to_contain_text("facts.pdf")

    long_page = "\n".join(["Numbats eat termites by the thousand every single day."] * 40)
    _attach(page, "book.pdf", "application/pdf", files.pdf_bytes([long_page] * 12))
    expect(page.locator("#composer-attachments li.attachment-document[data-attachment-id]")).to_contain_text("book.pdf")
    _send(page, "And this one?")

    expect(page.locator("#composer-alert")).to_contain_text("remove a document")
    assert len(streamed_requests(upstream)) == 1
    expect(page.locator("article.message[data-role=user]")).to_have_count(1)


def test_another_user_cannot_fetch_a_files_url(page, site, alice, bob, browser, make_persona, upstream):
    persona = make_persona("fake-vision")
    ChatModel.objects.filter(pk=persona.model_id).update(supports_images=True)
    conversation = services.conversation_create(owner=alice, persona=persona)
    _open(page, site, alice, conversation)
    _attach(page, "private.png", "image/png", files.png_bytes())
    chip = page.locator("#composer-attachments li.attachment-image[data-attachment-id]")
    expect(chip).to_be_visible()
    url = site.url(chip.locator("img").get_attribute("src"))
    assert page.request.get(url).status == 200

    other = browser.new_context()
    try:
        sign_in(other, site, bob)
        assert other.request.get(url).status == 404
        assert other.request.get(url, max_redirects=0).status == 404
    finally:
        other.close()
    anonymous = browser.new_context()
    try:
        response = anonymous.request.get(url, max_redirects=0)
        assert response.status == 302 and "/accounts/login/" in response.headers["location"]
    finally:
        anonymous.close()


def test_switching_model_mid_chat(page, site, alice, make_persona, provider, upstream):
    persona = make_persona("fake-first")
    second = ChatModel.objects.create(
        provider=provider, model_id="fake-second", display_name="Second model", enabled=True
    )
    persona.other_models.add(second)
    conversation = services.conversation_create(owner=alice, persona=persona)
    _open(page, site, alice, conversation)

    _send(page, "First question")
    _replies_done(page, 2)
    page.select_option("#model-picker select[name=model]", label="Second model")
    expect(page.locator("#model-picker select[name=model] option:checked")).to_have_text("Second model")
    page.wait_for_function("() => !document.querySelector('#model-picker.htmx-request')")
    _send(page, "Second question")
    _replies_done(page, 3)

    assert [r.body["model"] for r in streamed_requests(upstream)] == ["fake-first", "fake-second"]
    metas = page.locator(f"{ASSISTANT}[data-status=complete] .message-meta")
    expect(metas.nth(0)).to_contain_text("fake-first")
    expect(metas.nth(1)).to_contain_text("fake-second")
    page.reload()
    expect(page.locator("#model-picker select[name=model] option:checked")).to_have_text("Second model")


def test_a_chats_temperature_set_in_the_picker_reaches_the_upstream(page, site, alice, make_persona, upstream):
    conversation = services.conversation_create(owner=alice, persona=make_persona(temperature=1.2))
    _open(page, site, alice, conversation)

    temperature = page.locator("#model-picker input[name=temperature]")
    expect(temperature).to_have_attribute("placeholder", "1.2")
    temperature.fill("0.3")
    temperature.press("Enter")
    expect(page.locator("#model-picker input[name=temperature]")).to_have_value("0.3")
    page.wait_for_function("() => !document.querySelector('#model-picker.htmx-request')")
    _send(page, "Be precise")
    _replies_done(page, 2)

    assert [r.body.get("temperature") for r in streamed_requests(upstream)] == [0.3]
    page.reload()
    expect(page.locator("#model-picker input[name=temperature]")).to_have_value("0.3")


def test_custom_instructions_reach_the_system_message(page, site, alice, persona, upstream):
    _log_in(page, site, alice)
    page.goto(site.url("/account/"))
    page.fill("#custom-instructions-form textarea[name=about_me]", "I keep bees in Lisbon.")
    page.fill("#custom-instructions-form textarea[name=reply_style]", "Answer in one sentence.")
    page.click("#custom-instructions-form button[type=submit]")
    expect(page.locator("#custom-instructions-form .instructions-saved")).to_be_visible()
    assert CustomInstructions.objects.get(user=alice).about_me == "I keep bees in Lisbon."

    conversation = services.conversation_create(owner=alice, persona=persona)
    _open(page, site, alice, conversation)
    _send(page, "Hello")
    _replies_done(page, 2)

    system = streamed_requests(upstream)[-1].body["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith(persona.system_prompt)
    assert "I keep bees in Lisbon." in system["content"] and "Answer in one sentence." in system["content"]


def test_a_users_own_persona_is_private_to_its_owner(page, site, alice, bob, browser, provider, persona):
    ChatModel.objects.create(
        provider=provider, model_id="fake-open", display_name="Open model", enabled=True, offered_to_everyone=True
    )
    alice.user_permissions.add(Permission.objects.get(codename="create_own_persona"))
    _log_in(page, site, alice)
    page.goto(site.url("/personas/"))
    page.fill("#persona-create-form input[name=name]", "Beekeeper")
    page.fill("#persona-create-form textarea[name=system_prompt]", "You know bees.")
    page.fill("#persona-create-form textarea[name=greeting]", "Bzz, hello!")
    page.select_option("#persona-create-form select[name=model]", label="Open model")
    page.click("#persona-create-form button[type=submit]")
    expect(page.locator(".own-persona .persona-name")).to_have_text("Beekeeper")
    own = Persona.objects.get(owner=alice)

    page.goto(site.url("/"))
    expect(page.locator(f"button.persona-card[data-persona='{own.slug}']")).to_contain_text("Beekeeper")
    open_new_chat(page, own)
    expect(page.locator(ASSISTANT).first).to_contain_text("Bzz, hello!")

    other = browser.new_context()
    try:
        sign_in(other, site, bob)
        bobs = other.new_page()
        bobs.goto(site.url("/"))
        expect(bobs.locator(f"button.persona-card[data-persona='{persona.slug}']")).to_be_visible()
        expect(bobs.locator(f"button.persona-card[data-persona='{own.slug}']")).to_have_count(0)
        assert other.request.get(site.url(f"/personas/{own.slug}/")).status in (403, 404)
        assert other.request.get(site.url(f"/?persona={own.slug}")).status == 400  # Not a persona bob may use.
    finally:
        other.close()


def test_files_pasted_or_dropped_into_the_composer_are_attached(page, site, alice, persona, upstream):
    conversation = services.conversation_create(owner=alice, persona=persona)
    _open(page, site, alice, conversation)

    for event, target in (("paste", COMPOSER), ("drop", ".composer-area")):
        page.evaluate(
            """([event, target, name]) => {
                const data = new DataTransfer();
                data.items.add(new File(["Notes from " + event], name, {type: "text/plain"}));
                const init = {bubbles: true, cancelable: true};
                const dispatched = event === "paste"
                    ? new ClipboardEvent("paste", {...init, clipboardData: data})
                    : new DragEvent("drop", {...init, dataTransfer: data});
                document.querySelector(target).dispatchEvent(dispatched);
            }""",
            [event, target, f"{event}.txt"],
        )
    chips = page.locator("#composer-attachments li.attachment-document[data-attachment-id]")
    expect(chips).to_have_count(2)
    _send(page, "Two notes")
    _replies_done(page, 2)

    sent = streamed_requests(upstream)[-1].body["messages"][-1]["content"]
    assert "Notes from paste" in sent and "Notes from drop" in sent
