"""The site's SQLite backend (chatsite/sqlite/base.py): a statement refused as busy is tried again every millisecond.

Each test holds SQLite's writer from a second, plain connection and lets it
go from the backend's own sleep, in one thread: with SQLite's busy handler
the statement would wait out the timeout instead and fail.
"""

import sqlite3
import threading
import time
import types

import pytest
from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.utils import ConnectionHandler

from chatsite.sqlite import base

ALIAS = "turns"
TIMEOUT_S = 0.5


class Sleeps:
    """The backend's sleeps (s) in `seconds`; once there are `release_at` of them, `holder` commits."""

    def __init__(self):
        self.seconds: list[float] = []
        self.holder: sqlite3.Connection | None = None
        self.release_at = 0

    def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)
        if self.holder is not None and len(self.seconds) == self.release_at:
            self.holder.execute("COMMIT")

    def release_after(self, holder: sqlite3.Connection, count: int) -> None:
        self.holder, self.release_at = holder, count


@pytest.fixture(autouse=True)
def database_access(django_db_blocker):
    """The backend's own databases, files in tmp_path, not the test database."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def sleeps(monkeypatch):
    recorder = Sleeps()
    monkeypatch.setattr(base, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=recorder.sleep))
    return recorder


def _database(path, init_command="PRAGMA journal_mode=WAL;", *, create=True):
    options = {"init_command": init_command, "transaction_mode": "IMMEDIATE", "timeout": TIMEOUT_S}
    handler = ConnectionHandler({"default": {"ENGINE": "chatsite.sqlite", "NAME": path, "OPTIONS": options}})
    database = base.DatabaseWrapper(handler.settings["default"], alias=ALIAS)  # Its settings with Django's defaults.
    if create:
        with database.cursor() as cursor:
            cursor.execute("CREATE TABLE note (n integer NOT NULL)")
    return database


@pytest.fixture
def database(tmp_path):
    """The backend on a WAL database in tmp_path, as the connection `ALIAS`."""
    database = _database(tmp_path / "turns.sqlite3")
    connections[ALIAS] = database
    yield database
    del connections[ALIAS]
    database.close()


@pytest.fixture
def holder(database):
    """A plain sqlite3 connection to the same database, in autocommit: `BEGIN IMMEDIATE` takes the writer."""
    holder = sqlite3.connect(database.settings_dict["NAME"], isolation_level=None, check_same_thread=False)
    yield holder
    holder.close()


def _notes(holder):
    return [n for (n,) in holder.execute("SELECT n FROM note ORDER BY n")]


def test_a_write_in_autocommit_is_tried_again_every_millisecond_until_the_writer_is_free(database, holder, sleeps):
    holder.execute("BEGIN IMMEDIATE")
    sleeps.release_after(holder, 3)

    with database.cursor() as cursor:
        cursor.execute("INSERT INTO note (n) VALUES (%s)", [1])

    assert sleeps.seconds == [base.RETRY_INTERVAL_S] * 3
    assert _notes(holder) == [1]


def test_an_atomic_blocks_begin_immediate_waits_its_turn_the_same_way(database, holder, sleeps):
    holder.execute("BEGIN IMMEDIATE")
    sleeps.release_after(holder, 2)

    with transaction.atomic(using=ALIAS), database.cursor() as cursor:
        cursor.execute("INSERT INTO note (n) VALUES (%s)", [1])
        cursor.execute("INSERT INTO note (n) VALUES (%s)", [2])

    assert sleeps.seconds == [base.RETRY_INTERVAL_S] * 2  # At BEGIN only: the block then holds the writer.
    assert _notes(holder) == [1, 2]


def test_executemany_outside_a_transaction_waits_its_turn_and_writes_its_rows_once_in_one_transaction(
    database, holder, sleeps
):
    holder.execute("BEGIN IMMEDIATE")
    sleeps.release_after(holder, 2)

    with database.cursor() as cursor:
        cursor.executemany("INSERT INTO note (n) VALUES (%s)", [[1], [2], [3]])
        assert cursor.rowcount == 3
    assert _notes(holder) == [1, 2, 3]
    assert not database.connection.in_transaction

    with pytest.raises(IntegrityError), database.cursor() as cursor:  # A failing row undoes the others.
        cursor.executemany("INSERT INTO note (n) VALUES (%s)", [[4], [5], [None]])
    assert _notes(holder) == [1, 2, 3]
    assert not database.connection.in_transaction


def test_a_writer_still_taken_after_the_timeout_raises_database_is_locked(database, holder, sleeps):
    holder.execute("BEGIN IMMEDIATE")

    with pytest.raises(OperationalError, match="database is locked"), database.cursor() as cursor:
        cursor.execute("INSERT INTO note (n) VALUES (%s)", [1])

    assert len(sleeps.seconds) > 1 and set(sleeps.seconds) == {base.RETRY_INTERVAL_S}
    holder.execute("COMMIT")
    assert _notes(holder) == []


def test_in_one_process_only_the_first_statement_refused_tries_again_the_others_wait_their_turn(
    database, holder, monkeypatch
):
    """Four threads write while another connection holds the writer: one polls at a time, then all write."""
    holder.execute("BEGIN IMMEDIATE")
    polling: set[int] = set()
    most_polling = sleeps = 0
    count = threading.Lock()

    def sleep(seconds):
        nonlocal most_polling, sleeps
        with count:
            polling.add(threading.get_ident())
            most_polling = max(most_polling, len(polling))
            sleeps += 1
            if sleeps == 40:
                holder.execute("COMMIT")
        time.sleep(seconds)
        with count:
            polling.discard(threading.get_ident())

    def write(n):
        writer = _database(database.settings_dict["NAME"], create=False)
        with writer.cursor() as cursor:
            cursor.execute("INSERT INTO note (n) VALUES (%s)", [n])
        writer.close()

    monkeypatch.setattr(base, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert _notes(holder) == [0, 1, 2, 3]
    assert sleeps >= 40 and most_polling == 1


def test_another_error_is_raised_at_once(database, sleeps):
    with pytest.raises(OperationalError, match="no such table"), database.cursor() as cursor:
        cursor.execute("INSERT INTO nowhere (n) VALUES (%s)", [1])

    assert sleeps.seconds == []


def test_sqlites_busy_handler_is_off_in_wal_mode_and_kept_in_other_modes(tmp_path):
    wal = _database(tmp_path / "wal.sqlite3")
    rollback_journal = _database(tmp_path / "delete.sqlite3", "PRAGMA journal_mode=DELETE;")

    with wal.cursor() as cursor:
        assert cursor.execute("PRAGMA busy_timeout").fetchone() == (0,)
    with rollback_journal.cursor() as cursor:
        assert cursor.execute("PRAGMA busy_timeout").fetchone() == (TIMEOUT_S * 1000,)
    assert (wal.turn_timeout_s, rollback_journal.turn_timeout_s) == (TIMEOUT_S, 0.0)
    wal.close()
    rollback_journal.close()
