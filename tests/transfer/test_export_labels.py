"""The Markdown and text exports' labels are in the exporting page's language; conversations.json never changes."""

import io
import json
import zipfile

import pytest
from django.urls import reverse
from django.utils import translation

from conversations import selectors
from conversations.models import Conversation
from tests.conversations.history import make_conversation
from transfer import export

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(alice, make_persona):
    persona = make_persona(name="Travel guide", slug="travel")
    return Conversation.objects.select_related("persona__model").get(pk=make_conversation(alice, persona).pk)


def shown(conversation):
    return list(selectors.message_list_for_conversation(conversation=conversation))


def test_markdown_labels_are_in_the_active_language(conversation):
    with translation.override("zh-hant"):
        text = export.conversation_markdown(conversation, shown(conversation))
    assert "- 角色: Travel guide (travel)\n- 模型: fake-echo\n" in text
    sections = [section.split("\n", 1)[0] for section in text.split("\n### ")[1:]]
    assert sections == ["使用者", "助理", "使用者", "助理 (錯誤)"]
    assert "> 錯誤： The provider is unavailable." in text


def test_text_labels_and_the_untitled_heading_are_in_the_active_language(conversation):
    conversation.title = ""
    with translation.override("zh-hans"):
        text = export.conversation_text(conversation, shown(conversation))
    assert text.startswith("未命名对话\n")
    assert "--- 用户 ---" in text and "--- 助手 (出错) ---" in text


def test_the_streamed_zip_writes_its_markdown_in_the_pages_language(client, alice, conversation):
    client.force_login(alice)
    response = client.get(reverse("transfer:export-all"), headers={"accept-language": "zh-TW"})
    with translation.override("en"):  # the body is read here, after the view returned, in another language
        data = b"".join(response.streaming_content)
    archive = zipfile.ZipFile(io.BytesIO(data))
    markdown = next(archive.read(name).decode() for name in archive.namelist() if name.endswith(".md"))
    assert "### 使用者" in markdown and "- 對話: " in markdown
    document = json.loads(archive.read("conversations.json"))
    assert document["conversations"][0]["messages"][0]["role"] == "user"


@pytest.mark.parametrize("copies", [1, 12])
def test_export_all_translates_its_words_once_not_once_per_conversation(alice, conversation, monkeypatch, copies):
    calls = []
    gettext = export._

    def counted(message):
        calls.append(message)
        return gettext(message)

    monkeypatch.setattr(export, "_", counted)
    more = [make_conversation(alice, conversation.persona, title=f"Trip {i}") for i in range(copies - 1)]
    pairs = [(c, shown(c)) for c in [conversation, *more]]
    with translation.override("zh-hant"):
        chunks = export.archive_chunks(json_pairs=pairs, markdown_pairs=pairs, exported_at=conversation.created_at)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))

    assert len(calls) == len(set(calls)) == 15  # the words of `export._labels`, whatever the number of conversations
    markdown = [archive.read(name).decode() for name in archive.namelist() if name.endswith(".md")]
    assert len(markdown) == copies and all("### 使用者" in text and "- 對話: " in text for text in markdown)
