"""The ``chat`` command: ``chat login URL``, then ``chat`` for the chat loop or ``echo hi | chat`` for scripts.

Exit status: 0 on success, 1 when the site refused or failed (one line on stderr, never a
traceback), 2 for a bad command line, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import openai

from . import chat_loop
from .config import ConfigError, Credentials, credentials_load, credentials_save, normalize_url
from .output import Output
from .site import Persona, Site, SiteError, error_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat",
        description="Chat with a chat site's personas from the terminal. "
        "Piped input (not a terminal) sends one message and prints the reply.",
    )
    parser.add_argument("--url", help="the site (default: CHAT_URL, else the one `chat login` saved)")
    parser.add_argument("--persona", help="persona slug (default: CHAT_PERSONA, else the site's first)")
    parser.add_argument("--no-color", action="store_true", help="plain text: no colours, no Markdown rendering")
    commands = parser.add_subparsers(dest="command", metavar="{login}")
    login = commands.add_parser("login", help="save a site's URL and your personal API key")
    login.add_argument("site_url", metavar="URL", help="the site, e.g. https://chat.example.com")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    color = not args.no_color and "NO_COLOR" not in os.environ
    output = Output(color=color)
    errors = Output(color=color, file=sys.stderr)
    try:
        if args.command == "login":
            return login(args.site_url, output)
        credentials = credentials_load(url=args.url)
        site = Site(credentials)
        try:
            persona = choose_persona(site, args.persona or os.environ.get("CHAT_PERSONA"))
            if not sys.stdin.isatty():
                return one_shot(site, persona, output, errors)
            chat_loop.run(site, chat_loop.Session(persona=persona, personas=site.personas()), output)
        finally:
            site.close()
    except KeyboardInterrupt:
        return 130
    except ConfigError as error:
        errors.error(str(error))
        return 1
    except (openai.APIError, SiteError, OSError) as error:
        errors.error(error_line(error, url=args.url or os.environ.get("CHAT_URL", "")))
        return 1
    return 0


def login(url: str, output: Output) -> int:
    """Ask for the key, check it against the site (``GET /v1/models``), then save both."""
    url = normalize_url(url)
    api_key = os.environ.get("CHAT_API_KEY") or getpass.getpass("Personal API key (from your account page): ").strip()
    if not api_key:
        raise ConfigError("No key given: create one on the site's account page.")
    credentials = Credentials(url=url, api_key=api_key)
    site = Site(credentials)
    try:
        count = len(site.personas())
    finally:
        site.close()
    path = credentials_save(credentials)
    output.info(f"Logged in to {url} ({count} personas). Key saved in {path} (readable by you only).")
    return 0


def choose_persona(site: Site, slug: str | None) -> Persona:
    personas = site.personas()
    if not personas:
        raise SiteError("No persona is available to you on this site.")
    if slug is None:
        return personas[0]
    for persona in personas:
        if persona.id == slug:
            return persona
    raise SiteError(f"No persona {slug!r} on this site: {', '.join(p.id for p in personas)}.")


def one_shot(site: Site, persona: Persona, output: Output, errors: Output) -> int:
    """Send stdin as one message and print the reply as it streams (for scripts)."""
    message = sys.stdin.read().strip()
    if not message:
        errors.error("Nothing to send: standard input was empty.")
        return 1
    _, deltas = site.chat(persona=persona.id, message=message, conversation_id=None)
    text = ""
    for delta in deltas:
        text += delta
        output.file.write(delta)
        output.file.flush()
    output.file.write("\n" if not text.endswith("\n") else "")
    output.file.flush()
    return 0
