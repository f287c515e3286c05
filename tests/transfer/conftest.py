"""Fixtures of the transfer tests."""

import pytest

from transfer import jobs as import_jobs


@pytest.fixture(autouse=True)
def _import_worker_stopped():
    """Stop the import worker thread a test started: left running, it would take up other tests' jobs."""
    yield
    import_jobs.import_worker_stop()
