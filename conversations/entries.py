"""A conversation's entry in the sidebar's lists and on the archive page (`<div class="conversation-item">`).

Built in Python rather than by a template, as a message's bubble is
(`bubbles.py`): a page with the sidebar shows up to SIDEBAR_PAGE_SIZE dated
entries plus the pinned and filed ones, and the template, with its three or
four URL reversals per entry, took about a quarter of the server time of a
conversation page (bench/README.md, the twelfth round). Every value is escaped
(`rendering.html_format`). Templates put entries in place with the
`conversation_rows`, `conversation_entries` and `conversation_entry` tags
(`templatetags/chat.py`).
"""

from collections.abc import Iterable
from uuid import UUID

from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from conversations.models import Conversation
from conversations.rendering import html_format, html_join, html_literal
from conversations.sidebar import Row

_PLACEHOLDER = UUID(int=0)


class _Urls:
    """The URLs of one list's conversations: each view's reversed once, then filled in with each public id.

    Django's `reverse` costs tens of microseconds a call and an entry needs
    three or four. `<uuid:public_id>` writes a UUID as `str(uuid)`
    (`django.urls.converters.UUIDConverter.to_url`), so putting a
    conversation's id where the placeholder's was gives what `reverse` would.
    """

    def __init__(self) -> None:
        self._around: dict[str, tuple[str, str]] = {}

    def __call__(self, name: str, public_id: UUID | None = None) -> str:
        """Return the URL of view `name` (one of `conversations/urls.py`'s) for `public_id`, or of one taking none."""
        around = self._around.get(name)
        if around is None:
            if public_id is None:
                around = (reverse(name), "")
            else:
                head, _placeholder, tail = reverse(name, kwargs={"public_id": _PLACEHOLDER}).rpartition(
                    str(_PLACEHOLDER)
                )
                around = (head, tail)
            self._around[name] = around
        return around[0] if public_id is None else f"{around[0]}{public_id}{around[1]}"


def render_rows(rows: Iterable[Row], *, current_id: UUID | None, csrf_token: object = "") -> SafeString:
    """Return the entries of `rows` (a page of the dated list), each date group's header before its first entry.

    current_id: the open conversation's public id (its entry is marked current), or None.
    csrf_token: the request's (a template's `csrf_token`), for the archive page's unarchive forms.
    """
    urls = _Urls()
    parts = []
    for row in rows:
        if row.header:
            parts.append(html_format('\n<h2 class="conversation-group">{}</h2>', row.header))
        parts.append(_entry_html(row.conversation, urls, current_id, csrf_token))
    return html_join(parts)


def render_entries(
    conversations: Iterable[Conversation], *, current_id: UUID | None, csrf_token: object = ""
) -> SafeString:
    """Return the entries of `conversations` (pinned or in a folder), as `render_rows` does without headers."""
    urls = _Urls()
    return html_join(_entry_html(conversation, urls, current_id, csrf_token) for conversation in conversations)


def _entry_html(conversation: Conversation, urls: _Urls, current_id: UUID | None, csrf_token: object) -> SafeString:
    """Return the entry of `conversation`: its link, then rename (in a list) or unarchive and delete (archived).

    conversation: with `public_id`, `title` and `archived` loaded.
    """
    public_id = conversation.public_id
    current = " current" if public_id == current_id else ""
    link = html_format(
        '<a href="{}" class="conversation-link"><span id="conversation-{}-title">{}</span></a>',
        urls("conversations:conversation-detail", public_id),
        public_id,
        conversation.title or _("New chat"),
    )
    if conversation.archived:
        unarchive_url = urls("conversations:conversation-unarchive", public_id)
        delete_url = urls("conversations:conversation-delete", public_id)
        return html_format(
            '\n<div id="archived-{}" class="conversation-item{}">\n  {}'
            '\n  <form method="post" action="{}" hx-post="{}" hx-swap="none" class="item-action">{}'
            '<input type="hidden" name="next" value="{}"><button type="submit" class="link-button">{}</button></form>'
            '\n  <a href="{}" hx-get="{}" hx-target="#main" class="item-action danger">{}</a>\n</div>',
            public_id,
            current,
            link,
            unarchive_url,
            unarchive_url,
            _csrf_input(csrf_token),
            urls("conversations:conversation-archived-list"),
            _("Unarchive"),
            delete_url,
            delete_url,
            _("Delete"),
        )
    rename_url = urls("conversations:conversation-rename", public_id)
    rename_label = _("Rename")
    return html_format(
        '\n<div id="conversation-{}" class="conversation-item{}" draggable="true" data-folder-url="{}">\n  {}'
        '\n  <a href="{}" hx-get="{}?place=sidebar" hx-target="closest .conversation-item" hx-swap="outerHTML"'
        ' class="item-action item-rename" title="{}" aria-label="{}">✎</a>\n</div>',
        public_id,
        current,
        urls("conversations:conversation-folder", public_id),
        link,
        rename_url,
        rename_url,
        rename_label,
        rename_label,
    )


def _csrf_input(csrf_token: object) -> SafeString:
    """Return the hidden field `{% csrf_token %}` writes for `csrf_token`, or nothing without one (as it does)."""
    if not csrf_token or csrf_token == "NOTPROVIDED":
        return html_literal("")
    return html_format('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', csrf_token)
