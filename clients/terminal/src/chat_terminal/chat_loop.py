"""The interactive chat loop and its slash commands.

Keys: Enter sends; Ctrl-C while a reply streams stops it (the connection is closed, so the site
stops the upstream and keeps the partial reply); Ctrl-C or Ctrl-D at the prompt, ``exit`` or
``quit`` leaves. Commands: ``/persona [slug]``, ``/new``, ``/history``, ``/open N|ID``,
``/export [FILE]``, ``/help``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openai
from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, InMemoryHistory

from .config import history_path
from .output import Output
from .site import ConversationSummary, Persona, Site, SiteError, error_line

HELP = """\
Commands:
  /persona          list the personas; /persona SLUG switches (and starts a new conversation)
  /new              start a new conversation
  /history          list your latest conversations; /open N (or an id) resumes one
  /export [FILE]    write the current conversation as Markdown (default: <title>.md)
  /help             this list
  exit, quit, Ctrl-D, or Ctrl-C at the prompt: leave. Ctrl-C while a reply streams stops it."""

EXIT_WORDS = {"exit", "quit", "/exit", "/quit"}
# Messages shown when a conversation is opened again.
RESUME_SHOWN = 10


@dataclass
class Session:
    """The chat's state: the persona, the conversation being continued, the last history listing."""

    persona: Persona
    personas: list[Persona]
    conversation_id: str | None = None
    listing: list[ConversationSummary] = field(default_factory=list)


def send(site: Site, session: Session, output: Output, text: str) -> None:
    """Send ``text`` and stream the reply; Ctrl-C stops it and keeps what came.

    Raises:
        openai.APIError, SiteError: the site refused or failed before the reply started.
        KeyboardInterrupt: a second Ctrl-C while the stopped reply was being closed.
    """
    reply, deltas = site.chat(persona=session.persona.id, message=text, conversation_id=session.conversation_id)
    session.conversation_id = reply.conversation_id
    output.reply_start(session.persona.name)
    note = ""
    try:
        for delta in deltas:
            output.reply_delta(delta)
    except KeyboardInterrupt:
        note = "[stopped: the partial reply is kept]"
    except openai.APIError as error:
        note = error_line(error, url=site.url)
    finally:
        deltas.close()  # type: ignore[attr-defined]  # a generator: closing it closes the connection
    if not note and reply.finish_reason == "length":
        note = "[cut off: the reply reached its length limit]"
    output.reply_end(note=note)


def run(site: Site, session: Session, output: Output, *, prompt: Callable[[str], str] | None = None) -> None:
    """Run the loop until the user leaves."""
    if prompt is None:
        try:
            history_file = history_path()
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history: FileHistory | InMemoryHistory = FileHistory(str(history_file))
        except OSError:
            history = InMemoryHistory()
        prompt_session: PromptSession[str] = PromptSession(history=history)
        prompt = prompt_session.prompt
    output.info(f"Chatting with {session.persona.name} on {site.url}. /help lists the commands.")
    while True:
        try:
            text = prompt(f"{session.persona.id}> ").strip()
        except (KeyboardInterrupt, EOFError):
            return
        if not text:
            continue
        if text.lower() in EXIT_WORDS:
            return
        try:
            if text.startswith("/"):
                command(site, session, output, text)
            else:
                send(site, session, output, text)
        except KeyboardInterrupt:
            output.info("[stopped]")
        except (openai.APIError, SiteError, OSError) as error:
            output.error(error_line(error, url=site.url))


def command(site: Site, session: Session, output: Output, text: str) -> None:
    """Run one slash command."""
    name, _, argument = text.partition(" ")
    argument = argument.strip()
    if name == "/help":
        output.info(HELP)
    elif name == "/new":
        session.conversation_id = None
        output.info(f"New conversation with {session.persona.name}.")
    elif name == "/persona":
        persona_command(site, session, output, argument)
    elif name == "/history":
        history_command(site, session, output)
    elif name == "/open":
        open_command(site, session, output, argument)
    elif name == "/export":
        export_command(site, session, output, argument)
    else:
        output.error(f"Unknown command {name}: /help lists the commands.")


def persona_command(site: Site, session: Session, output: Output, slug: str) -> None:
    session.personas = site.personas()
    if not slug:
        for persona in session.personas:
            mark = "*" if persona.id == session.persona.id else " "
            description = f" · {persona.description}" if persona.description else ""
            output.info(f"{mark} {persona.id}  {persona.name}{description}")
        output.info("/persona SLUG switches.")
        return
    chosen = next((persona for persona in session.personas if persona.id == slug), None)
    if chosen is None:
        output.error(f"No persona {slug!r}: /persona lists them.")
        return
    session.persona = chosen
    session.conversation_id = None
    output.info(f"Now chatting with {chosen.name} (a new conversation).")


def history_command(site: Site, session: Session, output: Output) -> None:
    session.listing = site.conversations()
    if not session.listing:
        output.info("No conversations yet.")
        return
    for number, item in enumerate(session.listing, start=1):
        current = "*" if item.id == session.conversation_id else " "
        output.info(f"{current}{number:>3}. {item.title or '(untitled)'}  · {item.persona} · {item.updated_at[:16]}")
    output.info("/open N resumes one.")


def open_command(site: Site, session: Session, output: Output, argument: str) -> None:
    if not argument:
        output.error("/open N resumes conversation N of /history (or give its id).")
        return
    conversation_id = argument
    if argument.isdigit():
        number = int(argument)
        if not 1 <= number <= len(session.listing):
            output.error(f"No conversation {number} in the list: /history lists them.")
            return
        conversation_id = session.listing[number - 1].id
    conversation = site.conversation(conversation_id)
    slug = (conversation.get("persona") or {}).get("slug")
    persona = next((p for p in session.personas if p.id == slug), None)
    if persona is None:
        session.personas = site.personas()
        persona = next((p for p in session.personas if p.id == slug), None)
    if persona is None:
        output.error("That conversation's persona is no longer available.")
        return
    session.persona = persona
    session.conversation_id = str(conversation["id"])
    messages = [m for m in conversation.get("messages", []) if isinstance(m, dict)]
    output.info(f"Resumed {conversation.get('title') or '(untitled)'} with {persona.name}.")
    if len(messages) > RESUME_SHOWN:
        output.info(f"... {len(messages) - RESUME_SHOWN} earlier messages (/export has them all)")
    for message in messages[-RESUME_SHOWN:]:
        label = "You" if message.get("role") == "user" else persona.name
        output.info(f"{label}:")
        output.markdown(str(message.get("content") or ""))


def export_command(site: Site, session: Session, output: Output, argument: str) -> None:
    if not session.conversation_id:
        output.error("Nothing to export yet: send a message or /open a conversation first.")
        return
    markdown = site.export_markdown(session.conversation_id)
    path = Path(argument).expanduser() if argument else Path(_file_name(markdown, session.conversation_id))
    path.write_text(markdown, encoding="utf-8")
    output.info(f"Wrote {path}")


def _file_name(markdown: str, conversation_id: str) -> str:
    """Return ``<title>.md`` from the export's first heading (letters of any script kept), else ``<id>.md``."""
    first = markdown.lstrip().split("\n", 1)[0].lstrip("# ").strip()
    stem = re.sub(r"[^\w-]+", "-", first).strip("-")[:60]
    return f"{stem or conversation_id}.md"
