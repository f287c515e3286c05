"""The terminal client's settings without a site: where the key comes from, the URL, the language it asks for."""

import pytest
from chat_terminal.config import ConfigError, Credentials, credentials_load, credentials_save, normalize_url
from chat_terminal.site import user_language


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in ("CHAT_URL", "CHAT_API_KEY", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("https://chat.example.com/", "https://chat.example.com"), ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000")],
)
def test_a_site_url_loses_its_trailing_slash_and_v1(given, kept):
    assert normalize_url(given) == kept


def test_a_url_that_is_not_http_is_refused():
    with pytest.raises(ConfigError, match="not an http"):
        normalize_url("chat.example.com")


def test_the_environment_wins_over_the_saved_file(monkeypatch):
    credentials_save(Credentials(url="https://saved.example", api_key="chat-saved"))
    assert credentials_load() == Credentials(url="https://saved.example", api_key="chat-saved")
    monkeypatch.setenv("CHAT_URL", "https://env.example/v1")
    monkeypatch.setenv("CHAT_API_KEY", "chat-env")
    assert credentials_load() == Credentials(url="https://env.example", api_key="chat-env")


def test_the_saved_key_is_never_sent_to_another_site(monkeypatch):
    credentials_save(Credentials(url="https://saved.example", api_key="chat-saved"))
    assert credentials_load(url="https://saved.example/v1/").api_key == "chat-saved"
    with pytest.raises(ConfigError, match="chat login URL"):
        credentials_load(url="https://elsewhere.example")
    monkeypatch.setenv("CHAT_URL", "https://elsewhere.example")
    with pytest.raises(ConfigError, match="chat login URL"):
        credentials_load()


def test_nothing_configured_says_to_log_in():
    with pytest.raises(ConfigError, match="chat login URL"):
        credentials_load()


def test_the_key_never_shows_in_a_repr():
    assert "chat-secret" not in repr(Credentials(url="https://x.example", api_key="chat-secret"))


@pytest.mark.parametrize(
    ("env", "tag"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh-CN"),
        ({"LANG": "en_GB.UTF-8", "LC_ALL": "zh_TW.UTF-8"}, "zh-TW"),
        ({"LANG": "C.UTF-8"}, ""),
        ({}, ""),
    ],
)
def test_the_language_asked_for_follows_the_locale(monkeypatch, env, tag):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert user_language() == tag
