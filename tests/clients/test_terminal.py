"""The `chat` command in a pseudo-terminal against the site: login, streaming, stop, personas, resume, export."""

import json
import stat
import subprocess
from pathlib import Path

import pexpect
import pytest

from conversations.models import Conversation, Message
from tests.clients.conftest import CHAT, EXPECT_TIMEOUT_S
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = ">"  # prompt_toolkit draws the space after it as a cursor move


def prompt_of(persona) -> str:
    return f"{persona.slug}{PROMPT}"


def send(child: pexpect.spawn, text: str) -> None:
    child.sendline(text)


def test_login_asks_for_the_key_and_keeps_it_readable_by_the_user_only(spawn, client_env, site, api_key, helper):
    env = {k: v for k, v in client_env.items() if k not in ("CHAT_URL", "CHAT_API_KEY")}
    child = spawn("login", site.url("/"), env=env)
    child.expect("Personal API key")
    child.sendline(api_key)
    child.expect("Logged in to")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    config = next((p for p in (Path(env["HOME"]) / ".config" / "chat").glob("config.json")), None)
    assert config is not None
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert json.loads(config.read_text()) == {"url": site.url(""), "api_key": api_key}
    # Without CHAT_URL / CHAT_API_KEY, the next run uses the saved site and key.
    chat = spawn("--no-color", env=env)
    chat.expect_exact(prompt_of(helper))
    chat.sendline("exit")
    chat.expect(pexpect.EOF)


def test_login_with_a_wrong_key_saves_nothing_and_says_why_in_one_line(spawn, client_env, site, helper):
    env = {k: v for k, v in client_env.items() if k not in ("CHAT_URL", "CHAT_API_KEY")}
    child = spawn("login", site.url(""), env=env)
    child.expect("Personal API key")
    child.sendline("chat-not-a-real-key")
    child.expect(r"Error 401: [^\r\n]+\r\n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "Traceback" not in child.before
    assert not (Path(env["HOME"]) / ".config" / "chat" / "config.json").exists()


def test_a_reply_streams_then_is_shown_as_markdown(spawn, helper):
    child = spawn()
    child.expect_exact(prompt_of(helper))
    send(child, "你好，世界")
    # The raw deltas first ("**" as typed), then the rendering replaces them: the list's bullets.
    child.expect_exact("You said: **你好，世界**")
    child.expect_exact("•")
    child.expect_exact(prompt_of(helper))
    reply = Message.objects.get(role="assistant", conversation__owner__username="alice", parent__role="user")
    assert reply.content.startswith("You said: **你好，世界**")
    assert reply.conversation.persona == helper


def test_ctrl_c_stops_the_reply_and_the_site_keeps_the_partial_text(spawn, make_persona):
    stalled = make_persona("long:20+stall:60", slug="a-stalled", name="Stalled")
    child = spawn("--no-color")
    child.expect_exact(prompt_of(stalled))
    send(child, "start")
    child.expect_exact("w0 ")  # Streamed before the upstream stalls: a reply shows token by token.
    child.sendintr()
    child.expect_exact("[stopped")
    child.expect_exact(prompt_of(stalled))
    reply = wait_until(
        lambda: Message.objects.filter(role="assistant", status="stopped").first(),
        timeout_s=EXPECT_TIMEOUT_S,
        message="the site never marked the reply stopped",
    )
    assert reply.content == "w0 "
    # The second Ctrl-C, at the prompt, leaves.
    child.sendintr()
    child.expect(pexpect.EOF)


def test_a_reply_cut_by_its_length_limit_says_so(spawn, make_persona):
    cut = make_persona("long:3+finish:length", slug="a-cut", name="Cut")
    child = spawn("--no-color")
    child.expect_exact(prompt_of(cut))
    send(child, "go")
    child.expect_exact("w0 w1 w2")
    child.expect_exact("[cut off: the reply reached its length limit]")
    child.expect_exact(prompt_of(cut))


def test_persona_lists_and_switches_to_a_new_conversation(spawn, helper, make_persona):
    poet = make_persona("fake-echo", slug="b-poet", name="Poet", description="Writes verse")
    child = spawn("--no-color")
    child.expect_exact(prompt_of(helper))
    send(child, "/persona")
    child.expect_exact("b-poet  Poet · Writes verse")
    child.expect_exact(prompt_of(helper))
    send(child, "/persona b-poet")
    child.expect_exact("Now chatting with Poet")
    child.expect_exact(prompt_of(poet))
    send(child, "a poem please")
    child.expect_exact("You said: **a poem please**")
    child.expect_exact(prompt_of(poet))
    assert Conversation.objects.get().persona == poet
    send(child, "/persona nobody")
    child.expect_exact("No persona 'nobody'")


def test_history_and_open_resume_a_conversation(spawn, helper):
    child = spawn("--no-color")
    child.expect_exact(prompt_of(helper))
    send(child, "first question")
    child.expect_exact(prompt_of(helper))
    send(child, "/new")
    child.expect_exact("New conversation")
    send(child, "second question")
    child.expect_exact(prompt_of(helper))
    first = Conversation.objects.get(messages__content="first question")
    send(child, "/history")
    child.expect(r" 1\. [^\r\n]+ · a-helper · ")
    child.expect(r" 2\. [^\r\n]+ · a-helper · ")
    child.expect_exact("/open N resumes one.")
    send(child, "/open 2")  # Latest activity first: the first conversation is second.
    child.expect_exact("Resumed ")
    child.expect_exact("You said: **first question**")
    child.expect_exact(prompt_of(helper))
    send(child, "and a follow-up")
    child.expect_exact("You said: **and a follow-up**")
    child.expect_exact(prompt_of(helper))
    assert list(first.messages.filter(role="user").values_list("content", flat=True).order_by("created_at")) == [
        "first question",
        "and a follow-up",
    ]
    send(child, "/open 9")
    child.expect_exact("No conversation 9")


def test_export_writes_the_conversation_as_markdown(spawn, helper, tmp_path):
    child = spawn("--no-color")
    child.expect_exact(prompt_of(helper))
    send(child, "/export")
    child.expect_exact("Nothing to export yet")
    send(child, "导出这段对话")
    child.expect_exact(prompt_of(helper))
    send(child, "/export chat.md")
    child.expect_exact("Wrote chat.md")
    markdown = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert markdown.startswith("# ")  # The title the model gave it.
    assert "- Persona: Helper (a-helper)\n" in markdown
    assert "### User\n\n导出这段对话\n" in markdown
    assert "### Assistant\n\nYou said: **导出这段对话**" in markdown


def test_a_site_error_is_one_readable_line_and_the_chat_goes_on(spawn, make_persona):
    failing = make_persona("status:503", slug="a-failing", name="Failing")
    child = spawn("--no-color")
    child.expect_exact(prompt_of(failing))
    send(child, "hello")
    child.expect(r"Error[^\r\n]*\r\n")
    line = child.after
    child.expect_exact(prompt_of(failing))
    assert "Traceback" not in child.before + line
    send(child, "/open not-an-id")
    child.expect(r"Error 404: [^\r\n]+\r\n")
    child.expect_exact(prompt_of(failing))


def test_a_bad_key_is_refused_in_one_line(client_env, helper):
    result = subprocess.run(
        [str(CHAT)],
        input="hello",
        env={**client_env, "CHAT_API_KEY": "chat-wrong"},
        capture_output=True,
        text=True,
        timeout=EXPECT_TIMEOUT_S,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error 401: ")
    assert result.stderr.count("\n") == 1


def test_piped_input_sends_one_message_and_prints_the_reply(client_env, helper):
    result = subprocess.run(
        [str(CHAT), "--persona", helper.slug],
        input="你好，机器人\n",
        env=client_env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=EXPECT_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("You said: **你好，机器人**\n")
    assert "\x1b[" not in result.stdout  # Plain text for scripts.
    reply = Message.objects.get(role="assistant", parent__role="user")
    assert result.stdout == reply.content + "\n"


@pytest.mark.parametrize("leave", ["exit", "quit", "\x04"])
def test_exit_quit_and_ctrl_d_leave(spawn, helper, leave):
    child = spawn("--no-color")
    child.expect_exact(prompt_of(helper))
    child.send(leave if leave == "\x04" else leave + "\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
