"""Production settings: `manage.py check --deploy` passes with the variables README's "Production" names.

Each case runs the check in a clean process, so nothing of this test run's
configuration (DEBUG, the test secret key) leaks in.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent


def _production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CHAT_VAR_DIR": str(tmp_path),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DJANGO_HTTPS": "1",
    }
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _setting(env: dict[str, str], expression: str) -> str:
    code = f"import chatsite.settings as s; print(repr({expression}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_check_deploy_passes_with_the_production_variables(tmp_path):
    result = _check_deploy(_production_env(tmp_path))

    assert result.returncode == 0, result.stderr + result.stdout


def test_check_deploy_passes_behind_a_proxy(tmp_path):
    result = _check_deploy(_production_env(tmp_path, DJANGO_BEHIND_PROXY="1"))

    assert result.returncode == 0, result.stderr + result.stdout


def test_check_deploy_fails_without_https(tmp_path):
    result = _check_deploy(_production_env(tmp_path, DJANGO_HTTPS="0"))

    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_check_deploy_fails_with_a_weak_secret_key(tmp_path):
    result = _check_deploy(_production_env(tmp_path, DJANGO_SECRET_KEY="short-key"))

    assert result.returncode != 0
    assert "security.W009" in result.stderr


def test_check_deploy_warns_when_hsts_leaves_out_subdomains(tmp_path):
    result = _check_deploy(_production_env(tmp_path, DJANGO_HSTS_INCLUDE_SUBDOMAINS="0"))

    assert result.returncode != 0
    assert "security.W005" in result.stderr


def test_check_deploy_passes_with_hsts_preload_opted_in(tmp_path):
    result = _check_deploy(_production_env(tmp_path, DJANGO_HSTS_PRELOAD="1"))

    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(
    ("behind_proxy", "expected"),
    [(None, "(None, 0)"), ("0", "(None, 0)"), ("1", "(('HTTP_X_FORWARDED_PROTO', 'https'), 1)")],
)
def test_proxy_headers_are_trusted_only_behind_a_declared_proxy(tmp_path, behind_proxy, expected):
    # The scheme (X-Forwarded-Proto) for Django, the client address (X-Forwarded-For) for the login rate limits.
    env = _production_env(tmp_path, DJANGO_BEHIND_PROXY=behind_proxy)

    trusted = _setting(
        env, "(getattr(s, 'SECURE_PROXY_SSL_HEADER', None), getattr(s, 'ALLAUTH_TRUSTED_PROXY_COUNT', 0))"
    )

    assert trusted == expected


def test_development_defaults_keep_plain_http(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CHAT_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "1"}

    values = _setting(
        env,
        "(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)",
    )

    assert values == "(False, False, False, 0)"
