"""Fixtures of the transfer tests."""

import pytest

from transfer import jobs as import_jobs


@pytest.fixture(autouse=True)
def _import_worker_stopped():
    """Stop the import worker thread a test started: left running, it would take up other tests' jobs."""
    yield
    import_jobs.import_worker_stop()


@pytest.fixture(autouse=True)
def _imports_in_this_process(settings):
    """A job the worker takes up runs in this process, where the test database and the tests' patches are.

    The daphne process of `test_a_daphne_process_takes_up_the_job_left_waiting_when_it_starts`
    keeps the default: each job in a child process (`manage.py import_job_run`).
    """
    settings.CHAT_IMPORT_SUBPROCESS = False
