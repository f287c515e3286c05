"""The server's command, `python -m chatsite.serve`: daphne's command line, its reactor on uvloop's event loop.

Each case runs in a clean process: daphne makes its loop when `daphne.server`
is first imported, and this test run may have imported it already.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Runs chatsite.serve as `python -m` does, with a stand-in for daphne's command line that imports
# `daphne.server` (which makes the reactor's loop) and prints that loop's module and its arguments.
_PROBE = textwrap.dedent(
    """
    import runpy, sys, types

    class CommandLineInterface:
        def run(self, args):
            import daphne.server
            print(type(daphne.server.twisted_loop).__module__, args)

    sys.modules["daphne.cli"] = types.SimpleNamespace(CommandLineInterface=CommandLineInterface)
    sys.argv = ["chatsite/serve.py", "-b", "127.0.0.1", "-p", "8001", "chatsite.asgi:application"]
    {before}
    runpy.run_module("chatsite.serve", run_name="__main__")
    """
)


def _probe(before: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _PROBE.format(before=before)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_daphne_runs_its_reactor_on_uvloops_loop_with_the_arguments_it_was_given():
    probe = _probe()

    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split(" ", 1) == ["uvloop", "['-b', '127.0.0.1', '-p', '8001', 'chatsite.asgi:application']\n"]


def test_it_refuses_to_start_when_daphne_made_its_loop_already():
    probe = _probe(before="import daphne.server")

    assert probe.returncode != 0
    assert "RuntimeError: daphne.server was imported before chatsite.serve" in probe.stderr
    assert probe.stdout == ""
