"""The serving process: whether this process serves the site, and work started on its event loop once it does.

Background work of the server (transfer's import worker, the bots' sweep of
deliveries a stopped process left) starts from an `AppConfig.ready()` only
in a process that serves the site (`serves_site`); tests, `migrate`,
`makemigrations`, the shell and other management commands start nothing.
`at_start` runs a callable on the server's own event loop once it runs: the
loop the consumers, the callbacks and the replies run on, so the work may use
the in-process channel layer and start replies as a request does.
"""

import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def serves_site(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Return whether the process run as `argv` with `environ` serves the site (default: this process's own).

    Serving means run as daphne (`python -m chatsite.serve ...`, `daphne ...`
    or `python -m daphne ...`) or as the process of `manage.py runserver` that
    serves (the autoreloader's child, `RUN_MAIN=true`, or `--noreload`).
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    program = Path(argv[0]) if argv else Path()
    daphne = (
        program.name == "daphne"
        or (program.name == "__main__.py" and program.parent.name == "daphne")
        or (program.name == "serve.py" and program.parent.name == "chatsite")
    )
    runserver = len(argv) > 1 and argv[1] == "runserver" and (environ.get("RUN_MAIN") == "true" or "--noreload" in argv)
    return daphne or runserver


def at_start(callback: Callable[[], object]) -> None:
    """Call `callback()` on the server's event loop as soon as daphne's reactor runs (once; from a serving process).

    Daphne serves from Twisted's asyncio reactor. Importing `daphne.server`
    installs that reactor: daphne's own advice for code that touches Twisted
    before it (`runserver` sets Django up, and so calls `ready()`, before it
    imports daphne). Twisted fires its startup triggers just before the loop
    runs, so the trigger schedules `callback` with `callLater(0, ...)`, which
    runs inside the loop: `asyncio.get_running_loop()` works there.
    """
    import daphne.server  # type: ignore[import-untyped]  # noqa: F401  # Installs the asyncio reactor.
    from twisted.internet import reactor

    reactor.callWhenRunning(reactor.callLater, 0, callback)


def startup_objects_freeze() -> None:
    """Collect, then move every object alive into the collector's permanent generation (`gc.freeze`).

    Run once the server runs (`at_start`, from `ConversationsConfig.ready`):
    by then Django, the apps, the templates' loaders and the reactor hold
    some 200,000 objects that live as long as the process. A full
    (generation 2) collection walked them all, holding the interpreter lock
    for about 130 ms, the event loop's and the ORM thread's work stopped
    alike, about once per class's round of replies (bench/README.md, the
    sixth round). Frozen, a full collection walks only what came later.
    Source: the Python documentation of the `gc` module (`gc.freeze`, 3.7+).
    """
    gc.collect()
    gc.freeze()
