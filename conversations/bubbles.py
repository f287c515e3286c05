"""A message's bubble (`<article>`): its text, files, notes and actions, for pages and socket events alike.

Built in Python rather than by a template: every send renders two bubbles
before its reply's request leaves, and Django's template engine took 0.75 ms
of a class's send for them, 43 % of a batch's CPU (bench/README.md, the
eleventh round). Every value is escaped (`rendering.html_format`) but a
message's stored HTML, sanitized when it was saved (`rendering.stored_html`).
Pages put bubbles in place with the `bubble` tag (`templatetags/chat.py`).
"""

from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from attachments.models import Attachment
from conversations.dom import message_body_dom_id, message_dom_id
from conversations.models import Conversation, Message
from conversations.rendering import html_format, html_join, html_literal, stored_html

_OOB = html_literal(' hx-swap-oob="true"')
_DISABLED = html_literal("disabled")
_FOOTER_START = html_literal('\n    <footer class="message-footer">')
_FOOTER_END = html_literal("\n    </footer>")
_END = html_literal("\n  </div>\n</article>")


def render_bubble(message: Message, conversation: Conversation, *, oob: bool = False) -> SafeString:
    """Return the bubble of `message`, a message of `conversation`; with `oob`, it replaces the one of the same id.

    message: with `versions` (`selectors.Versions` or None), as `fragments.with_versions` sets them (and
        `fragments.bubble_html` does, for one message); a user message with its attachments prefetched, or they
        are read here (one query).
    """
    public_id = message.public_id
    parts = [
        html_format(
            '<article id="{}" data-message-id="{}" class="message message-{}" data-role="{}" data-status="{}"{}>'
            '\n  <div class="message-main">\n    ',
            message_dom_id(public_id),
            public_id,
            message.role,
            message.role,
            message.status,
            _OOB if oob else "",
        ),
        _body_html(message),
    ]
    if message.error_text:
        parts.append(html_format('\n    <p class="message-error" role="alert">{}</p>', message.error_text))
    if message.status == Message.Status.STOPPED:
        parts.append(_note_html(_("Stopped.")))
    if message.finish_reason == "length":
        parts.append(_note_html(_("The reply reached its length limit (max tokens) and was cut off.")))
    if message.finish_reason == "content_filter":
        parts.append(_note_html(_("The provider's content filter stopped this reply.")))
    if not message.is_streaming:
        parts.append(_footer_html(message, conversation))
    parts.append(_END)
    return html_join(parts)


def _body_html(message: Message) -> SafeString:
    """Return the files and the text of `message`: a user's text as saved, a streaming reply's as plain text."""
    body_id = message_body_dom_id(message.public_id)
    if message.role == Message.Role.USER:
        return html_format(
            '{}<div id="{}" class="message-body message-text">{}</div>',
            _attachments_html(list(message.attachments.all())),
            body_id,
            stored_html(message.content_html) if message.content_html else message.content,
        )
    if message.is_streaming:
        return html_format('<div id="{}" class="message-body message-text">{}</div>', body_id, message.content)
    return html_format(
        '<div id="{}" class="message-body markdown">{}</div>', body_id, stored_html(message.content_html)
    )


def _attachments_html(attachments: list[Attachment]) -> SafeString:
    """Return the list of a user message's files (`attachments.Attachment`), empty without any."""
    if not attachments:
        return html_literal("")
    items = []
    for attachment in attachments:
        file_url = reverse("attachments:attachment-file", args=[attachment.public_id])
        if attachment.is_image:
            size = (
                html_format(' width="{}" height="{}"', attachment.width, attachment.height) if attachment.width else ""
            )
            shown = html_format(
                '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}" loading="lazy"{}></a>',
                file_url,
                file_url,
                attachment.name,
                size,
            )
        else:
            shown = html_format(
                '<a href="{}" class="attachment-doc" title="{}"><span aria-hidden="true">📄</span>'
                ' <span class="attachment-name">{}</span></a>\n'
                '    <span class="muted attachment-size">{}{}</span>',
                file_url,
                attachment.name,
                attachment.name,
                filesizeformat(attachment.size_bytes),
                " · " + _("text cut to fit") if attachment.text_cut else "",
            )
        items.append(
            html_format(
                '\n  <li class="attachment attachment-{}" data-attachment-id="{}">\n    {}\n  </li>',
                attachment.kind,
                attachment.public_id,
                shown,
            )
        )
    return html_format('<ul class="attachments" aria-label="{}">{}\n</ul>\n', _("Attached files"), html_join(items))


def _note_html(text: str) -> SafeString:
    """Return a note under a message's text (stopped, cut off, filtered)."""
    return html_format('\n    <p class="message-note">{}</p>', text)


def _footer_html(message: Message, conversation: Conversation) -> SafeString:
    """Return a finished message's versions, actions (copy, edit, continue, regenerate) and model figures."""
    parts = [_FOOTER_START]
    versions = getattr(message, "versions", None)
    if versions is not None and versions.total > 1:
        parts.append(
            html_format(
                '\n      <nav class="versions" aria-label="{}">'
                '\n        <button type="button" class="version-previous" {} title="{}">‹</button>'
                '\n        <span class="version-index">{}/{}</span>'
                '\n        <button type="button" class="version-next" {} title="{}">›</button>\n      </nav>',
                _("Versions"),
                _version_target(conversation, versions.previous),
                _("Previous version"),
                versions.index,
                versions.total,
                _version_target(conversation, versions.next),
                _("Next version"),
            )
        )
    parts.append(
        html_format(
            '\n      <button type="button" class="action action-copy" data-source="{}" title="{}">{}</button>',
            message.content,
            _("Copy the message’s Markdown"),
            _("Copy"),
        )
    )
    if message.role == Message.Role.USER:
        parts.append(
            html_format(
                '\n      <button type="button" class="action action-edit" data-source="{}" title="{}">{}</button>',
                message.content,
                _("Edit and send again"),
                _("Edit"),
            )
        )
    if message.role == Message.Role.ASSISTANT:
        parts.append(_reply_actions_html(message))
    parts.append(_FOOTER_END)
    return html_join(parts)


def _version_target(conversation: Conversation, version) -> SafeString:
    """Return the attributes of a button showing `version` (a message's public id), or disabling it when None."""
    if version is None:
        return _DISABLED
    url = reverse("conversations:message-show", args=[conversation.public_id, version])
    return html_format('hx-post="{}" hx-swap="none"', url)


def _reply_actions_html(message: Message) -> SafeString:
    """Return a finished reply's continue and regenerate buttons, as they apply, and its model's figures."""
    parts = []
    if message.finish_reason == "length" and message.status == Message.Status.COMPLETE:
        parts.append(
            html_format(
                '\n      <button type="button" class="action action-continue" ws-send'
                ' hx-vals=\'{{"action": "continue"}}\' title="{}">{}</button>',
                _("Ask the model to go on from where it was cut off"),
                _("Continue"),
            )
        )
    if message.parent_id:
        parts.append(
            html_format(
                '\n      <button type="button" class="action action-regenerate" ws-send'
                ' hx-vals=\'{{"action": "regenerate"}}\' title="{}">{}</button>',
                _("Write this reply again"),
                _("Regenerate"),
            )
        )
    if message.model_id:
        parts.append(
            html_format('\n      <span class="message-meta muted">{}{}</span>', message.model_id, _figures(message))
        )
    return html_join(parts)


def _figures(message: Message) -> SafeString:
    """Return a reply's completion tokens (marked when estimated) and time to first token, each after " · "."""
    parts = []
    tokens = message.completion_tokens
    if tokens is not None:
        counted: str
        if message.tokens_estimated:
            counted = html_format(
                '<span title="{}">{}</span>',
                _("The provider reported no usage: the site estimated it."),
                ngettext("about %(tokens)s token (estimated)", "about %(tokens)s tokens (estimated)", tokens)
                % {"tokens": tokens},
            )
        else:
            counted = ngettext("%(tokens)s token", "%(tokens)s tokens", tokens) % {"tokens": tokens}
        parts.append(html_format(" · {}", counted))
    if message.ttft_ms is not None:
        parts.append(html_format(" · {}", _("first token %(ms)s ms") % {"ms": message.ttft_ms}))
    return html_join(parts)
