"""Settings from the environment: the typed readers of chatsite/env.py, and what settings.py builds with them.

Whole-settings cases import `chatsite.settings` in a subprocess with a clean
environment, so nothing of this process's configuration leaks in.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatsite.env import env_bool, env_database, env_email, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
SQLITE_DEFAULT = {"ENGINE": "chatsite.sqlite", "NAME": "default.sqlite3"}


# env_str


def test_env_str_strips_the_value(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_VAR", "  value \n")

    assert env_str("CHAT_TEST_VAR") == "value"


def test_env_str_returns_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("CHAT_TEST_VAR", raising=False)

    assert env_str("CHAT_TEST_VAR", "fallback") == "fallback"


# env_bool


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On "])
def test_env_bool_reads_true_words(monkeypatch, raw):
    monkeypatch.setenv("CHAT_TEST_VAR", raw)

    assert env_bool("CHAT_TEST_VAR", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off", ""])
def test_env_bool_reads_false_words(monkeypatch, raw):
    monkeypatch.setenv("CHAT_TEST_VAR", raw)

    assert env_bool("CHAT_TEST_VAR", True) is False


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_returns_the_default_when_unset(monkeypatch, default):
    monkeypatch.delenv("CHAT_TEST_VAR", raising=False)

    assert env_bool("CHAT_TEST_VAR", default) is default


def test_env_bool_rejects_other_words_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_VAR", "maybe")

    with pytest.raises(ImproperlyConfigured, match=r"CHAT_TEST_VAR.*'maybe'"):
        env_bool("CHAT_TEST_VAR", False)


# env_int


def test_env_int_reads_an_integer(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_VAR", " 42 ")

    assert env_int("CHAT_TEST_VAR", 7) == 42


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_int_returns_the_default_when_unset_or_blank(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv("CHAT_TEST_VAR", raising=False)
    else:
        monkeypatch.setenv("CHAT_TEST_VAR", raw)

    assert env_int("CHAT_TEST_VAR", 7) == 7


@pytest.mark.parametrize("raw", ["forty", "4.5", "1e3"])
def test_env_int_rejects_a_non_integer_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("CHAT_TEST_VAR", raw)

    with pytest.raises(ImproperlyConfigured, match="CHAT_TEST_VAR must be an integer"):
        env_int("CHAT_TEST_VAR", 7)


def test_env_int_rejects_a_value_below_the_minimum_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_VAR", "0")

    with pytest.raises(ImproperlyConfigured, match="CHAT_TEST_VAR must be at least 1"):
        env_int("CHAT_TEST_VAR", 7, minimum=1)


def test_env_int_accepts_the_minimum_itself(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_VAR", "1")

    assert env_int("CHAT_TEST_VAR", 7, minimum=1) == 1


# env_list


def test_env_list_splits_on_commas_and_drops_blank_items(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_VAR", " chat.example.com, ,localhost,")

    assert env_list("CHAT_TEST_VAR", ["default"]) == ["chat.example.com", "localhost"]


def test_env_list_returns_a_copy_of_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("CHAT_TEST_VAR", raising=False)
    default = ["a"]

    value = env_list("CHAT_TEST_VAR", default)

    assert value == ["a"] and value is not default


def test_env_list_set_but_empty_is_an_empty_list(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_VAR", "")

    assert env_list("CHAT_TEST_VAR", ["default"]) == []


# env_database


def test_env_database_returns_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("CHAT_TEST_DB", raising=False)

    assert env_database("CHAT_TEST_DB", SQLITE_DEFAULT) is SQLITE_DEFAULT


def test_env_database_reads_a_postgres_url(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_DB", "postgres://chat:s%40cret@db.internal:6543/chatsite")

    config = env_database("CHAT_TEST_DB", SQLITE_DEFAULT)

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "chat",
        "s@cret",
        "db.internal",
        6543,
        "chatsite",
    )
    assert config["CONN_MAX_AGE"] == 60 and config["CONN_HEALTH_CHECKS"] is True


def test_env_database_reads_a_sqlite_url_with_options_for_the_sites_sqlite_backend(monkeypatch):
    monkeypatch.setenv("CHAT_TEST_DB", "sqlite:////srv/chat/db.sqlite3?timeout=20")

    config = env_database("CHAT_TEST_DB", SQLITE_DEFAULT)

    assert config["ENGINE"] == "chatsite.sqlite"
    assert config["NAME"] == "/srv/chat/db.sqlite3"
    assert config["OPTIONS"] == {"timeout": 20}


@pytest.mark.parametrize("url", ["mysql://u:p@localhost/chat", "oracle://u:p@localhost/chat"])
def test_env_database_rejects_unsupported_engines_naming_the_variable(monkeypatch, url):
    monkeypatch.setenv("CHAT_TEST_DB", url)

    with pytest.raises(ImproperlyConfigured, match="CHAT_TEST_DB"):
        env_database("CHAT_TEST_DB", SQLITE_DEFAULT)


@pytest.mark.parametrize("url", ["nonsense", "postgres://chat@localhost:notaport/chatsite"])
def test_env_database_rejects_an_unparsable_url_naming_the_variable(monkeypatch, url):
    monkeypatch.setenv("CHAT_TEST_DB", url)

    with pytest.raises(ImproperlyConfigured, match="CHAT_TEST_DB"):
        env_database("CHAT_TEST_DB", SQLITE_DEFAULT)


# env_email


def test_env_email_is_empty_when_unset(monkeypatch):
    monkeypatch.delenv("CHAT_TEST_MAIL", raising=False)

    assert env_email("CHAT_TEST_MAIL") == {}


@pytest.mark.parametrize(
    ("url", "port", "tls", "ssl"),
    [
        ("smtp://mail.example.com", 25, False, False),
        ("smtp+tls://mail.example.com", 587, True, False),
        ("smtp+ssl://mail.example.com", 465, False, True),
        ("smtp+tls://mail.example.com:2525", 2525, True, False),
    ],
)
def test_env_email_reads_an_smtp_url(monkeypatch, url, port, tls, ssl):
    monkeypatch.setenv("CHAT_TEST_MAIL", url.replace("://", "://bot%40example.com:p%40ss@"))

    config = env_email("CHAT_TEST_MAIL")

    assert config == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": "bot@example.com",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_TLS": tls,
        "EMAIL_USE_SSL": ssl,
    }


@pytest.mark.parametrize("url", ["http://mail.example.com", "mail.example.com", "smtp://"])
def test_env_email_rejects_other_urls_naming_the_variable(monkeypatch, url):
    monkeypatch.setenv("CHAT_TEST_MAIL", url)

    with pytest.raises(ImproperlyConfigured, match="CHAT_TEST_MAIL"):
        env_email("CHAT_TEST_MAIL")


# settings.py as a whole, in a clean process


def _settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Import chatsite.settings with only `env` (and PATH) set; print a few values as JSON."""
    code = (
        "import json, chatsite.settings as s;"
        "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'],"
        " 'db_name': str(s.DATABASES['default']['NAME']),"
        " 'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
        " 'layer_hosts': s.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('hosts'),"
        " 'debug': s.DEBUG, 'secret_key': s.SECRET_KEY, 'allowed_hosts': s.ALLOWED_HOSTS,"
        " 'static_root': str(s.STATIC_ROOT), 'email_backend': s.EMAIL_BACKEND, 'email_host': s.EMAIL_HOST,"
        " 'email_enabled': s.CHAT_EMAIL_ENABLED}))"
    )
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CHAT_VAR_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=60
    )


def _settings_json(tmp_path: Path, **env: str) -> dict:
    result = _settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_need_no_configuration_but_a_secret_key(tmp_path):
    values = _settings_json(tmp_path, DJANGO_SECRET_KEY="k" * 50)

    assert values["engine"] == "chatsite.sqlite"
    assert values["db_name"] == str(tmp_path / "db.sqlite3")
    assert values["layer"] == "chatsite.channel_layers.LocalChannelLayer"
    assert values["debug"] is False
    assert values["allowed_hosts"] == ["127.0.0.1", "localhost", "[::1]"]


def test_database_url_switches_to_postgresql(tmp_path):
    values = _settings_json(
        tmp_path, DJANGO_SECRET_KEY="k" * 50, DATABASE_URL="postgres://chat:pw@127.0.0.1:5432/chatsite"
    )

    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_name"] == "chatsite"


def test_redis_url_switches_the_channel_layer_to_channels_redis(tmp_path):
    values = _settings_json(tmp_path, DJANGO_SECRET_KEY="k" * 50, REDIS_URL="redis://127.0.0.1:6379/2")

    assert values["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert [host["address"] for host in values["layer_hosts"]] == ["redis://127.0.0.1:6379/2"]
    # Longer than the layer's idle waits: redis-py 8's default 5 s read timeout cut idle sockets.
    assert values["layer_hosts"][0]["socket_timeout"] > 5


def test_missing_secret_key_with_debug_off_refuses_to_start(tmp_path):
    result = _settings(tmp_path)  # tmp_path holds no secret_key file

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_missing_secret_key_is_allowed_in_debug(tmp_path):
    values = _settings_json(tmp_path, DJANGO_DEBUG="1")

    assert values["debug"] is True
    assert values["secret_key"]


def test_secret_key_is_read_from_the_var_dir_file(tmp_path):
    (tmp_path / "secret_key").write_text("from-the-file\n")

    values = _settings_json(tmp_path)

    assert values["secret_key"] == "from-the-file"


def test_bad_variable_refuses_to_start_naming_it(tmp_path):
    result = _settings(tmp_path, DJANGO_SECRET_KEY="k" * 50, CHAT_COALESCE_MS="soon")

    assert result.returncode != 0
    assert "ImproperlyConfigured: CHAT_COALESCE_MS must be an integer" in result.stderr


def test_chat_static_root_moves_collectstatic_output(tmp_path):
    values = _settings_json(tmp_path, DJANGO_SECRET_KEY="k" * 50, CHAT_STATIC_ROOT=str(tmp_path / "static"))

    assert values["static_root"] == str(tmp_path / "static")


def test_without_a_mail_url_mail_goes_to_the_log_and_counts_as_disabled(tmp_path):
    values = _settings_json(tmp_path, DJANGO_SECRET_KEY="k" * 50)

    assert values["email_backend"] == "django.core.mail.backends.console.EmailBackend"
    assert values["email_enabled"] is False


def test_a_mail_url_configures_smtp_and_enables_password_reset_mails(tmp_path):
    values = _settings_json(tmp_path, DJANGO_SECRET_KEY="k" * 50, DJANGO_EMAIL_URL="smtp+tls://u:p@mail.example.com")

    assert values["email_backend"] == "django.core.mail.backends.smtp.EmailBackend"
    assert values["email_host"] == "mail.example.com"
    assert values["email_enabled"] is True
