"""The throwaway site every bench runs against: a temporary SQLite database, migrated, with usage limits off."""

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def bench_site(
    prefix: str = "chat-bench-", extra: Mapping[str, str] | None = None, *, static: bool = False
) -> Iterator[str]:
    """Point Django at a fresh SQLite database in a temporary folder, migrate it, and yield the folder.

    The variables are set in this process's environment, so a daphne process
    started from here (tests/servers.py) gets the same site. Production-like:
    DEBUG off (DEBUG would keep every query in memory), quiet logs; per-user
    usage limits off (0 means no limit), since one bench user sends far more
    than a person would. `extra` adds or overrides variables; `static` runs
    collectstatic, which pages rendered with DEBUG off need.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("REDIS_URL", None)
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "chatsite.settings",
                "CHAT_VAR_DIR": tmp,
                "CHAT_STATIC_ROOT": os.path.join(tmp, "static"),  # whitenoise warns when it is missing
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DJANGO_DEBUG": "0",
                "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
                "DJANGO_LOG_LEVEL": "WARNING",
                "CHAT_DEFAULT_SENDS_PER_MINUTE": "0",
                "CHAT_DEFAULT_CONCURRENT_REPLIES": "0",
                "CHAT_DEFAULT_DAILY_TOKENS": "0",
                **(extra or {}),
            }
        )
        os.makedirs(os.environ["CHAT_STATIC_ROOT"], exist_ok=True)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        if static:
            call_command("collectstatic", interactive=False, verbosity=0)
        yield tmp


def earlier_turns(count: int) -> list[tuple[str, str]]:
    """Return `count` (role, text) turns of a chat that has gone on a while: question and answer, ~300 characters."""
    return [
        ("user" if i % 2 == 0 else "assistant", f"Earlier message {i}: " + "some words of a longer chat " * 10)
        for i in range(count)
    ]
