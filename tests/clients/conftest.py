"""The terminal client (clients/terminal) against the real site: daphne in a subprocess, the fake upstream.

The client runs as the `chat` command installed in the test environment (`make test` installs it:
see the Makefile's `.installed-client`), in a pseudo-terminal driven by pexpect, or with a pipe
for its non-TTY use. Its config and history go to a temporary home.
"""

import os
import signal
import sys
from pathlib import Path

import pexpect
import pytest

from api.services import api_key_create
from tests.servers import DaphneServer

CHAT = Path(sys.executable).parent / "chat"
# Long enough for a slow CI machine, short enough that a hung client fails the test quickly.
EXPECT_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def site_server(django_db_setup, fake_upstream):
    """The site in a daphne process for the tests of one module, on the test database."""
    with DaphneServer(env={"CHAT_UPSTREAM_RETRIES": "0"}) as server:
        yield server


@pytest.fixture
def site(site_server, transactional_db):
    """The module's server, for a test whose committed rows are flushed after it."""
    return site_server


@pytest.fixture
def api_key(alice):
    """A personal API key of alice's (the key itself)."""
    return api_key_create(user=alice, name="terminal")[1]


@pytest.fixture
def helper(make_persona):
    """The persona listed first (slugs sort it first), answering with the fake upstream's Markdown reply."""
    return make_persona("fake-echo", slug="a-helper", name="Helper")


@pytest.fixture
def client_env(tmp_path, site, api_key):
    """The client's environment: a temporary home, the site and alice's key in CHAT_URL / CHAT_API_KEY."""
    if not CHAT.exists():
        pytest.fail(f"{CHAT} is missing: install the client (`make test` does; or pip install -e clients/terminal).")
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        # prompt_toolkit asks the terminal for the cursor position; pexpect does not answer.
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "CHAT_URL": site.url(""),
        "CHAT_API_KEY": api_key,
    }


def _ctrl_c_as_in_a_terminal() -> None:
    # A shell starts a command in the foreground with Ctrl-C's signal at its default. A suite started in the
    # background (`make test &`) has it ignored, and the client would inherit that: Ctrl-C would do nothing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def spawn(client_env, tmp_path):
    """Return a function starting `chat ARGS...` in a pseudo-terminal (80x200); every child is closed after the test."""
    children: list[pexpect.spawn] = []

    def start(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
        child = pexpect.spawn(
            str(CHAT),
            list(args),
            env=env if env is not None else client_env,
            cwd=str(tmp_path),
            encoding="utf-8",
            timeout=EXPECT_TIMEOUT_S,
            dimensions=(80, 200),
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        child.close(force=True)
