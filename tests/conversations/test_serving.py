import gc

import pytest
from django.apps import apps

from conversations import serving


@pytest.mark.parametrize("serves", [True, False])
def test_a_process_that_serves_the_site_freezes_its_start_up_objects_once_it_runs(monkeypatch, serves):
    scheduled = []
    monkeypatch.setattr(serving, "serves_site", lambda: serves)
    monkeypatch.setattr(serving, "at_start", scheduled.append)

    apps.get_app_config("conversations").ready()

    assert scheduled == ([serving.startup_objects_freeze] if serves else [])


def test_frozen_start_up_objects_are_left_out_of_full_collections():
    assert gc.get_freeze_count() == 0
    try:
        serving.startup_objects_freeze()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # Django, the apps and pytest, as a server's would be.
        assert len(gc.get_objects(generation=2)) < frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("argv", "environ", "serves"),
    [
        (["/srv/chat/chatsite/serve.py", "-b", "0.0.0.0", "chatsite.asgi:application"], {}, True),
        (["/srv/chat/.venv/bin/daphne", "chatsite.asgi:application"], {}, True),
        (["/srv/chat/.venv/lib/python3.11/site-packages/daphne/__main__.py", "chatsite.asgi:application"], {}, True),
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "runserver"], {}, False),  # The autoreloader's parent: its child serves.
        (["/srv/chat/other/serve.py"], {}, False),
        (["manage.py", "migrate"], {}, False),
        (["/srv/chat/.venv/bin/pytest"], {}, False),
    ],
)
def test_the_serving_process_is_told_by_its_command(argv, environ, serves):
    assert serving.serves_site(argv, environ) is serves
