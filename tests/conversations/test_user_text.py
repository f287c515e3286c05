"""A user's message as typed, its math as MathML: `rendering.render_user_text` and where the site stores it.

The output is parsed with the standard library's html.parser and checked
structurally (the helpers and the XSS corpus of test_rendering.py).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations import rendering, services
from conversations.mathml import MAX_MATH_CHARS
from conversations.models import Message
from conversations.rendering import render_user_text
from tests.conversations.test_rendering import CORPUS, _assert_safe, _assert_stable, _corpus_path, _parse
from tests.transfer.test_migrations import migrate
from transfer import export
from transfer import jobs as import_jobs
from transfer.importers import ParsedConversation, ParsedMessage


def _tags(markup: str) -> list[str]:
    return [element.tag for element in _parse(markup).elements]


def _text(markup: str) -> str:
    return "".join(_parse(markup).text)


@pytest.mark.parametrize(
    ("source", "display", "before", "after"),
    [
        ("Euler: $E=mc^2$, see?", "inline", "Euler: ", ", see?"),
        ("so \\(a^2+b^2=c^2\\) holds", "inline", "so ", " holds"),
        ("sum:\n$$\\sum_{k=1}^n k$$\ndone", "block", "sum:\n", "\ndone"),
        ("area \\[\\pi r^2\\] here", "block", "area ", " here"),
        ("\\[\nx = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}\n\\]", "block", "", ""),
    ],
)
def test_each_delimiter_becomes_mathml_and_the_rest_stays_as_typed(source, display, before, after):
    markup = str(render_user_text(source))

    math = [element for element in _parse(markup).elements if element.tag == "math"]
    assert [element.get("display") for element in math] == [display]
    assert _tags(markup)[0] == ("span" if display == "block" else "math")
    assert markup.startswith(before) and markup.endswith(after)
    assert "$" not in _text(markup) and "\\" not in _text(markup)
    _assert_safe(markup, images_allowed=False)
    _assert_stable(markup)


@pytest.mark.parametrize(
    "source",
    [
        "It costs $5 and $10.",
        "From $3.50 to $ 4 and back",
        "Prices: $20, $30 and $40",
        "escaped \\$x\\$ dollars",
        "paid $x\n\n$ later",  # a formula does not span a blank line
        "\\\\(x\\\\) is a LaTeX line break, no formula",
        "an empty \\(\\) pair",
    ],
)
def test_dollar_amounts_and_escaped_delimiters_stay_as_typed(source):
    markup = str(render_user_text(source))

    assert _tags(markup) == []
    assert _text(markup) == source


@pytest.mark.parametrize(
    "source",
    [
        "$\\frac{$ and more",
        "$\\unknowncommand{x}$",
        "try \\(\\frac{\\) please",
        "$$\n\\frac{\n$$",
    ],
)
def test_a_formula_that_does_not_parse_is_shown_as_typed(source):
    markup = str(render_user_text(source))

    assert _tags(markup) == []  # not code either: the message is shown as typed
    assert _text(markup) == source


def test_a_broken_formula_next_to_a_good_one_keeps_its_backslashes():
    markup = str(render_user_text("$\\nope{x}$ then $x^2$"))

    assert _tags(markup)[0] == "math"
    assert _text(markup).startswith("$\\nope{x}$ then ")


def test_html_and_markdown_in_the_text_are_shown_as_typed():
    source = "# not a heading\n*not em* <b>bold</b> <script>alert(1)</script> [a](javascript:alert(1)) & 'q' \"d\""
    markup = str(render_user_text(source))

    assert _tags(markup) == []
    assert _text(markup) == source
    assert "<b>" not in markup and "<script>" not in markup


def test_html_written_in_a_formula_is_text():
    markup = str(render_user_text("$\\text{</math><img src=x onerror=alert(1)>}$ after"))
    parsed = _assert_safe(markup, images_allowed=False)

    assert [element.tag for element in parsed.elements] == ["math", "mrow", "mtext"]
    assert "<img\xa0src=x\xa0onerror=alert(1)>" in _text(markup)
    assert _text(markup).endswith(" after")
    _assert_stable(markup)


@pytest.mark.parametrize(
    "hostile",
    [
        '<math><mtext href="javascript:alert(1)">x</mtext></math>',
        '<math><maction actiontype="statusline#javascript:alert(1)"><mi>x</mi></maction></math>',
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
        '$x$<math><annotation-xml encoding="text/html"><img src=x onerror=alert(1)></annotation-xml></math>$y$',
        "$\\href{javascript:alert(1)}{click}$",
        '$$\\text{<maction actiontype="statusline#javascript:alert(1)">x</maction>}$$',
    ],
)
def test_mathml_typed_by_a_person_is_text_and_formulas_stay_inert(hostile):
    markup = str(render_user_text(hostile))
    parsed = _assert_safe(markup, images_allowed=False)

    assert not {"maction", "annotation-xml", "mglyph", "style", "img", "table"} & {e.tag for e in parsed.elements}
    assert "<math>" in _text(markup) or "<math>" not in hostile  # typed markup shows as typed
    _assert_stable(markup)


@pytest.mark.parametrize("payload", CORPUS)
def test_user_text_of_payload_is_inert(payload):
    assert payload is not None, f"XSS corpus not found at {_corpus_path()}; set CHAT_FIXTURES_DIR"
    typed = services.storable_text(payload)  # as the site stores it: U+0000 is U+FFFD
    markup = str(render_user_text(typed))

    parsed = _assert_safe(markup, images_allowed=False)
    assert not {"a", "img", "input", "code", "pre", "p"} & {element.tag for element in parsed.elements}
    if not parsed.elements:  # no formula: the text exactly as typed (the HTML parser's newline rule aside)
        assert _text(markup) == typed.replace("\r\n", "\n").replace("\r", "\n")
    _assert_stable(markup)


def test_math_budget_per_message_leaves_later_formulas_as_typed():
    formula = "$" + "x+" * 900 + "y$ "
    count = MAX_MATH_CHARS // (len(formula) - 3) + 2
    parsed = _parse(str(render_user_text(formula * count)))

    rendered = [element for element in parsed.elements if element.tag == "math"]
    assert 0 < len(rendered) < count
    assert "".join(parsed.text).count("$") == 2 * (count - len(rendered))


def test_many_unclosed_openers_are_text():
    source = "\\(" * 5000 + "\n\n\\)" + "$a " * 5000

    assert _text(str(render_user_text(source))) == source


# --- where the site stores it ----------------------------------------------------------------------------------------

TYPED = "Is $E=mc^2$ right? It cost $5 and $10, \\(a\\)\\\\ <b>x</b>"


@pytest.mark.django_db
def test_a_sent_message_stores_its_math_and_keeps_its_text(conversation):
    sent = services.message_send(conversation=conversation, text=TYPED)

    question = Message.objects.get(pk=sent.user_message.pk)
    assert question.content == TYPED
    assert question.content_html == str(render_user_text(TYPED))
    assert _tags(question.content_html).count("math") == 2
    markdown = export.conversation_markdown(conversation, list(conversation.messages.filter(is_current=True)))
    assert TYPED in markdown  # export gives back what was typed


@pytest.mark.django_db
def test_an_edited_message_stores_its_math(conversation):
    sent = services.message_send(conversation=conversation, text="first")
    services.reply_finish(message=sent.assistant_message, content="ok", status="complete")

    edited = services.message_edit(conversation=conversation, text="then $x^2$").user_message

    assert "math" in _tags(Message.objects.get(pk=edited.pk).content_html)


@pytest.mark.django_db
def test_imported_user_messages_store_their_math(alice):
    parsed = ParsedConversation(
        title="Imported",
        messages=(ParsedMessage(role="user", content=TYPED), ParsedMessage(role="assistant", content="$y$")),
    )
    import_jobs.conversations_import(owner=alice, conversations=[parsed])

    question = Message.objects.get(role="user")
    assert (question.content, question.content_html) == (TYPED, str(render_user_text(TYPED)))


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_html_of_older_user_messages():
    old_apps = migrate([("conversations", "0012_folders_and_pins")])
    user = old_apps.get_model("auth", "User").objects.create(username="before-math")
    conversation = old_apps.get_model("conversations", "Conversation").objects.create(owner=user)
    old_message = old_apps.get_model("conversations", "Message")
    question = old_message.objects.create(conversation=conversation, role="user", content=TYPED)
    reply = old_message.objects.create(conversation=conversation, role="assistant", content="$y$", content_html="old")

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert Message.objects.get(pk=question.pk).content_html == str(rendering.render_user_text(TYPED))
    assert Message.objects.get(pk=reply.pk).content_html == "old"  # replies: manage.py rerender_replies
