"""Measure how long SQLite writers wait for the writer while another process holds it in turns, per backend.

One process plays an import: it holds SQLite's writer in transactions of
`--hold-ms` (inserting rows until the time is up), `--gap-ms` apart.
Another plays a server: `--threads` threads each write every 0 to
`--pause-ms` (at random), one UPDATE in autocommit (a rename) or, every
other time, an atomic block of an INSERT and an UPDATE (a send), each on
its thread's own Django connection; a further thread sleeps 1 ms at a time
and records how late it wakes (the event loop's share of the interpreter
while the writers wait). Both run for `--seconds`, with Django's SQLite
backend (`django.db.backends.sqlite3`: SQLite's busy handler) and then the
site's (`chatsite.sqlite`: tried again every millisecond, one thread at a
time), `--rounds` times alternating, each on a fresh WAL database. Prints,
per backend, each write's time (ms, p50 / p99 / max), the writes done, the
import's transactions and the ticker's lateness (p99 / max). Asserts
nothing. Usage (from the repository root):

    .venv/bin/python bench/sqlite_writers.py [--seconds 10] [--threads 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ENGINES = ("django.db.backends.sqlite3", "chatsite.sqlite")


def _django(engine: str, path: str) -> None:
    """Configure Django with one database, `path` through `engine`, as the site's default (WAL, IMMEDIATE, 20 s)."""
    sys.path.insert(0, str(BASE_DIR))
    import django
    from django.conf import settings

    options = {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "transaction_mode": "IMMEDIATE"}
    settings.configure(
        DATABASES={"default": {"ENGINE": engine, "NAME": path, "OPTIONS": {**options, "timeout": 20}}},
        USE_TZ=True,
    )
    django.setup()


def importer(args: argparse.Namespace) -> None:
    """Hold the writer `hold_ms` at a time, `gap_ms` apart, for `seconds`; print the transactions made."""
    _django(args.engine, args.path)
    from django.db import connection, transaction

    end = time.monotonic() + args.seconds
    transactions = 0
    while time.monotonic() < end:
        with transaction.atomic(), connection.cursor() as cursor:
            held_until = time.monotonic() + args.hold_ms / 1000
            while time.monotonic() < held_until:
                cursor.execute("INSERT INTO imported (text) VALUES (%s)", ["x" * 200])
        transactions += 1
        time.sleep(args.gap_ms / 1000)
    print(json.dumps({"transactions": transactions}))


def server(args: argparse.Namespace) -> None:
    """Write from `threads` threads for `seconds` while the ticker ticks; print the writes' and ticks' times (ms)."""
    _django(args.engine, args.path)
    from django.db import connection, transaction

    writes: list[float] = []
    lateness: list[float] = []
    end = time.monotonic() + args.seconds

    def writer(number: int) -> None:
        chance = random.Random(number)
        atomic = False
        while time.monotonic() < end:
            time.sleep(chance.uniform(0, args.pause_ms / 1000))
            started = time.perf_counter()
            if atomic:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("INSERT INTO sent (text) VALUES (%s)", ["hello"])
                    cursor.execute("UPDATE chat SET title = %s WHERE id = %s", ["sent", number])
            else:
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE chat SET title = %s WHERE id = %s", ["renamed", number])
            writes.append((time.perf_counter() - started) * 1000)
            atomic = not atomic
        connection.close()

    def ticker() -> None:
        while time.monotonic() < end:
            started = time.perf_counter()
            time.sleep(0.001)
            lateness.append((time.perf_counter() - started) * 1000 - 1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(args.threads)]
    threads.append(threading.Thread(target=ticker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"writes": writes, "lateness": lateness}))


def _database(folder: str, threads: int) -> str:
    import sqlite3

    path = str(Path(folder) / "writers.sqlite3")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE imported (id integer PRIMARY KEY, text text)")
        db.execute("CREATE TABLE sent (id integer PRIMARY KEY, text text)")
        db.execute("CREATE TABLE chat (id integer PRIMARY KEY, title text)")
        db.executemany("INSERT INTO chat (id, title) VALUES (?, '')", [(n,) for n in range(threads)])
    return path


def _run(args: argparse.Namespace, engine: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="sqlite-writers-") as folder:
        path = _database(folder, args.threads)
        common = ["--engine", engine, "--path", path, "--seconds", str(args.seconds)]
        timings = ["--hold-ms", str(args.hold_ms), "--gap-ms", str(args.gap_ms), "--pause-ms", str(args.pause_ms)]
        command = [sys.executable, __file__, *common, *timings, "--threads", str(args.threads)]
        imports = subprocess.Popen([*command, "--role", "importer"], stdout=subprocess.PIPE, text=True)
        served = subprocess.run([*command, "--role", "server"], capture_output=True, text=True, check=True)
        imported, _ = imports.communicate()
    return {**json.loads(served.stdout), **json.loads(imported)}


def _figures(values: list[float], *, median: bool = True) -> str:
    """Return "p50 / p99 / max" of `values` (ms), or "p99 / max" without the median."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    tail = f"{p99:6.1f} / {ordered[-1]:6.1f}"
    return f"{statistics.median(ordered):6.1f} / {tail}" if median else tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="each run (default 10)")
    parser.add_argument("--threads", type=int, default=10, help="the server's writing threads (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each backend, alternating (default 2)")
    parser.add_argument("--hold-ms", type=float, default=15, help="each import transaction (default 15)")
    parser.add_argument("--gap-ms", type=float, default=15, help="between import transactions (default 15)")
    parser.add_argument("--pause-ms", type=float, default=200, help="a writer's longest pause (default 200)")
    parser.add_argument("--role", choices=("importer", "server"), help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        {"importer": importer, "server": server}[args.role](args)
        return
    print(
        f"SQLite writers: {args.threads} threads write every 0-{args.pause_ms:g} ms while another process holds "
        f"the writer {args.hold_ms:g} ms every {args.hold_ms + args.gap_ms:g} ms; {args.seconds:g} s per run"
    )
    print(f"  {'backend':28} | write ms p50 / p99 / max | writes | import txs | ticker late ms p99 / max")
    for _round in range(args.rounds):
        for engine in ENGINES:
            result = _run(args, engine)
            print(
                f"  {engine:28} | {_figures(result['writes'])}   | {len(result['writes']):6} | "
                f"{result['transactions']:9} | {_figures(result['lateness'], median=False)}"
            )


if __name__ == "__main__":
    main()
