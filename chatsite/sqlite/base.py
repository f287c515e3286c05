"""Django's SQLite backend, with statements refused as busy tried again every millisecond.

SQLite lets one connection write at a time. A statement that finds the
writer taken waits in SQLite's busy handler, which sleeps longer and longer
between tries (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms:
`sqliteDefaultBusyCallback` in SQLite's main.c). A writer that has already
waited 100 ms thus tries again every 25 to 100 ms, while one that came later
tries every few: the later ones take the writer first. With an import's
batches holding it in turn, another user's rename waited up to 383 ms
(bench/README.md, the twenty-first round).

Here, on a database in WAL mode, SQLite's busy handler is off
(`PRAGMA busy_timeout = 0`) once the connection is set up, and a statement
that SQLite refuses with SQLITE_BUSY is run again every `RETRY_INTERVAL_S`
until it runs or the connection's `timeout` option (seconds, as for
`sqlite3.connect`; 5 by default) has passed, when SQLite's "database is
locked" is raised. A waiter tries as often however long it has waited.
Within a process, the statements refused wait their turn on a lock
(`write_turn`, one per database file): only the one holding it tries again,
the others sleep on the lock, so that the threads of one process do not each
wake a thousand times a second and take the interpreter from the event loop.

Only statements run outside a transaction are tried again: a statement in
autocommit is its own transaction and did nothing when refused, and Django's
`BEGIN IMMEDIATE` (OPTIONS `transaction_mode`) takes the writer before an
atomic block's first statement, which then never waits. `executemany`
outside a transaction, which would commit row by row, runs its rows in one
`BEGIN IMMEDIATE` transaction, so that a retry cannot write a row twice.
In WAL mode a COMMIT never waits: the transaction holds the writer, and
readers do not block it (https://sqlite.org/wal.html).

In other journal modes readers also hold back a writer's commit, and SQLite's
own busy handler is kept, `timeout` as its limit.
"""

import sqlite3
import threading
import time
from collections.abc import Callable
from functools import cache, partial
from typing import TypeVar

from django.db.backends.sqlite3 import base

RETRY_INTERVAL_S = 0.001
DEFAULT_TIMEOUT_S = 5.0  # sqlite3.connect's default `timeout`.

T = TypeVar("T")


@cache
def write_turn(database: str) -> threading.Lock:
    """Return the lock on which this process's statements refused as busy by `database` (a file's name) wait."""
    return threading.Lock()


def until_not_busy(run: Callable[[], T], *, turn: threading.Lock, timeout_s: float) -> T:
    """Return `run()`; while it raises SQLITE_BUSY, call it again every `RETRY_INTERVAL_S` holding `turn`.

    `timeout_s` (seconds) bounds the wait for `turn` and the tries together.

    Raises:
        sqlite3.OperationalError: SQLite's own error, busy ("database is locked")
            after `timeout_s`, or any other at once.
    """
    try:
        return run()
    except sqlite3.OperationalError as exc:
        if not _busy(exc):
            raise
        refused = exc
    deadline = time.monotonic() + timeout_s
    if not turn.acquire(timeout=timeout_s):
        raise refused
    try:
        while True:
            try:
                return run()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(RETRY_INTERVAL_S)
    finally:
        turn.release()


def _busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # The primary code of an extended one.


class TurnTakingCursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, whose statements outside a transaction are run again while SQLite refuses them as busy.

    `timeout_s` (seconds) and `turn` are set by `DatabaseWrapper.create_cursor`; `timeout_s` 0 runs each
    statement once.
    """

    timeout_s = 0.0
    turn: threading.Lock

    def execute(self, query, params=None):
        if self.connection.in_transaction or not self.timeout_s:
            return super().execute(query, params)
        return until_not_busy(partial(super().execute, query, params), turn=self.turn, timeout_s=self.timeout_s)

    def executemany(self, query, param_list):
        connection = self.connection
        if connection.in_transaction or connection.isolation_level is not None or not self.timeout_s:
            return super().executemany(query, param_list)
        self.execute("BEGIN IMMEDIATE")
        try:
            super().executemany(query, param_list)
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
        return self


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's SQLite `DatabaseWrapper` whose cursors take turns for the writer (see the module's docstring).

    OPTIONS as Django's SQLite backend; `timeout` (seconds) also limits how
    long a statement is tried again.
    """

    turn_timeout_s = 0.0  # How long statements are tried again: `timeout` in WAL mode, else 0 (SQLite waits).
    turn: threading.Lock  # This process's `write_turn` for the database.

    def get_new_connection(self, conn_params: dict) -> sqlite3.Connection:
        # Set up under SQLite's own wait: the first connection's PRAGMA journal_mode=WAL may find the writer taken.
        connection = super().get_new_connection(conn_params)
        self.turn = write_turn(str(self.settings_dict["NAME"]))
        (journal_mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if journal_mode == "wal":
            connection.execute("PRAGMA busy_timeout = 0")
            self.turn_timeout_s = float(conn_params.get("timeout", DEFAULT_TIMEOUT_S))
        else:
            self.turn_timeout_s = 0.0
        return connection

    def create_cursor(self, name=None) -> TurnTakingCursorWrapper:
        cursor = self.connection.cursor(factory=TurnTakingCursorWrapper)
        cursor.timeout_s = self.turn_timeout_s
        cursor.turn = self.turn
        return cursor
