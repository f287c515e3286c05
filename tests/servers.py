"""Run the site in real daphne processes, for tests and benchmarks that need a socket.

`DaphneServer` starts `python -m chatsite.serve chatsite.asgi:application`
(daphne on uvloop, as `make run` serves the site) on loopback with the
database of the running test, so a test marked
`django_db(transaction=True)` (committed rows) and the server see the same
data: the SQLite test database is a file (settings' `TEST NAME`), and for
PostgreSQL the server connects to the test database pytest-django created.

    with DaphneServer(static=True) as site:
        page.goto(site.url("/"))

The server runs with `DJANGO_DEBUG=0`, as in production; `static=True`
collects the static files once per test session into a temporary
`CHAT_STATIC_ROOT` so whitenoise serves the hashed, compressed files.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, urlencode

BASE_DIR = Path(__file__).resolve().parent.parent
# Variables of the test process that must not leak into the server.
_NOT_INHERITED = ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE", "CHAT_STATIC_ROOT")
_collected: dict[str, Path] = {}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict: Mapping[str, Any] | None = None) -> str:
    """Return a DATABASE_URL for the database of `settings_dict` (default: the test's connection).

    During a test, `django.db.connection.settings_dict["NAME"]` already names
    the test database (`test.sqlite3` in CHAT_VAR_DIR, or `test_<name>` on
    PostgreSQL). SQLite OPTIONS (WAL, IMMEDIATE, timeout) travel as the
    query string, which dj-database-url turns back into OPTIONS.

    Raises:
        ValueError: an in-memory SQLite database (no other process can open it)
            or an engine other than SQLite and PostgreSQL.
    """
    if settings_dict is None:
        from django.db import connection

        settings_dict = connection.settings_dict
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    options = {k: v for k, v in (settings_dict.get("OPTIONS") or {}).items() if isinstance(v, (str, int))}
    query = f"?{urlencode(options)}" if options else ""
    if engine == "chatsite.sqlite":
        if name == ":memory:" or "mode=memory" in name:
            raise ValueError("An in-memory SQLite test database cannot be shared with a daphne process.")
        return f"sqlite:///{Path(name).resolve()}{query}"
    if engine == "django.db.backends.postgresql":
        user = quote(str(settings_dict.get("USER") or ""), safe="")
        password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
        userinfo = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = str(settings_dict.get("HOST") or "")
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{userinfo}{host}{port}/{quote(name, safe='')}{query}"
    raise ValueError(f"DaphneServer does not know how to share a {engine} database.")


def collected_static_root(env: Mapping[str, str] | None = None) -> Path:
    """Run `collectstatic` once per process into a temporary folder; return the folder.

    Raises:
        subprocess.CalledProcessError: collectstatic failed (its output is in the exception).
    """
    if "root" not in _collected:
        root = Path(tempfile.mkdtemp(prefix="chat-static-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        run_env = {**_base_env(env), "CHAT_STATIC_ROOT": str(root)}
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            cwd=BASE_DIR,
            env=run_env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        _collected["root"] = root
    return _collected["root"]


def _base_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    if key := _test_secret_key():
        env["DJANGO_SECRET_KEY"] = key
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def _test_secret_key() -> str:
    # The server must share the test's key: sessions and encrypted API keys depend on it.
    from django.conf import settings

    # Not configured (a benchmark): the caller passes DJANGO_SECRET_KEY in `env`.
    return settings.SECRET_KEY if settings.configured else ""


class DaphneServer:
    """A daphne process serving the site on 127.0.0.1, stopped when the `with` block ends.

    `env` overrides the environment the server runs with (it inherits the
    test's, e.g. REDIS_URL); `database_url` defaults to the running test's
    database; `port=0` picks a free port. `url(path)`, `ws_url(path)` and
    `origin` give the addresses a client needs (websockets need the Origin
    header: `AllowedHostsOriginValidator`).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        port: int = 0,
        database_url: str | None = None,
        static: bool = False,
        startup_timeout_s: float = 30,
    ) -> None:
        self.extra_env = dict(env or {})
        self.requested_port = port
        self.database_url = database_url
        self.static = static
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._log_file: Any = None

    # -- addresses ---------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """Return the http URL of `path` on this server."""
        return f"{self.origin}{path}"

    def ws_url(self, path: str) -> str:
        """Return the ws URL of `path` on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        """Return what the server has printed so far (stdout and stderr)."""
        if self._log_file is None:
            return ""
        self._log_file.flush()
        return Path(self._log_file.name).read_text(errors="replace")

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start daphne and return once its port accepts connections.

        Raises:
            RuntimeError: daphne exited or did not listen within `startup_timeout_s`
                (the message holds its output).
        """
        env = _base_env({"DATABASE_URL": self.database_url or database_url(), **self.extra_env})
        if self.static:
            env["CHAT_STATIC_ROOT"] = str(collected_static_root(env))
        attempts = 1 if self.requested_port else 3  # A picked free port can be taken meanwhile.
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            # Open for the server's lifetime; stop() closes and removes it.
            self._log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115
                "w+", prefix="daphne-", suffix=".log", delete=False
            )
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chatsite.serve",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "chatsite.asgi:application",
                ],
                cwd=BASE_DIR,
                env=env,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            if self._wait_until_listening():
                return self
            output = self.log()
            self.stop()
            if "Address already in use" not in output or attempt == attempts - 1:
                raise RuntimeError(f"daphne did not start on port {self.port}:\n{output[-4000:]}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_until_listening(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Terminate daphne (SIGTERM, then SIGKILL after 10 s) and remove its log."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            Path(self._log_file.name).unlink(missing_ok=True)
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def session_cookie(user) -> str:
    """Return a `Cookie` header value logging `user` in (a session saved in the test database)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
