"""Whether an open socket's session still signs in its user: checked on the frames that act (`SignInCheck`)."""

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone
from django.utils.crypto import constant_time_compare

# The session's stored data and its user's password hash, if the session is unexpired and the user active.
_SESSION_AND_PASSWORD_SQL = """
SELECT s.{data}, u.{password} FROM {sessions} s, {users} u
WHERE s.{key} = %s AND s.{expires} > %s AND u.{id} = %s AND u.{active} = %s
"""


class SignInCheck:
    """Whether the session of one socket's scope still signs in its user, who is still active.

    Call `signed_in()` on a thread (it reads the database). The first call
    (the consumer's, when the socket opens), and any after a change, makes
    the check `django.contrib.auth.get_user` makes: the session loads and holds
    the user's id and the hash of their password, and the user is active. Each
    later call reads the session's stored data and the user's password hash in
    one statement, and passes when both are what the last passing check read:
    a logout deletes the session row, a password change changes the hash, a
    deactivation hides the user. So a send checks with one statement instead
    of two queries, a signature check and an HMAC (0.55 ms of a 6 ms send
    in a loop, 1.5 ms in a quiet server: bench/load.py). Per socket: its
    frames are checked one after the other.
    """

    def __init__(self, scope) -> None:
        self.scope = scope
        # (session data, password hash) as read before the last check that passed; None: check fully.
        self._passed: tuple[str, str] | None = None

    def signed_in(self) -> bool:
        """Return whether the session still signs in the user (a query; three after a change)."""
        session = self.scope.get("session")
        user = self.scope.get("user")
        if session is None or user is None or not session.session_key:
            return False
        stored = _session_and_password(session.session_key, user.pk)
        if stored is not None and stored == self._passed:
            return True
        self._passed = stored if stored is not None and _signed_in_fully(session.session_key, user.pk) else None
        return self._passed is not None


def _session_and_password(session_key: str, user_id: int) -> tuple[str, str] | None:
    quote = connection.ops.quote_name
    users = get_user_model()._meta
    sql = _SESSION_AND_PASSWORD_SQL.format(
        data=quote(Session._meta.get_field("session_data").column),
        password=quote(users.get_field("password").column),
        sessions=quote(Session._meta.db_table),
        users=quote(users.db_table),
        key=quote(Session._meta.get_field("session_key").column),
        expires=quote(Session._meta.get_field("expire_date").column),
        id=quote(users.pk.column),
        active=quote(users.get_field("is_active").column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [session_key, connection.ops.adapt_datetimefield_value(timezone.now()), user_id, True])
        row = cursor.fetchone()
    return (row[0], row[1]) if row is not None else None


def _signed_in_fully(session_key: str, user_id: int) -> bool:
    """Return whether session `session_key` signs in user `user_id`, who is active (two queries).

    The site keeps its sessions in the database (Django's default engine), which `_session_and_password` reads.
    """
    data = SessionStore(session_key).load()
    if data.get(SESSION_KEY) != str(user_id):
        return False
    current = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return current is not None and constant_time_compare(
        data.get(HASH_SESSION_KEY, ""), current.get_session_auth_hash()
    )
