"""Users' own personas: created only where the admin allows it, private to their owner unless published,
and the site's personas read-only to users."""

import pytest
from django.contrib.auth.models import Group, Permission

from personas.models import ChatModel, Persona
from personas.selectors import persona_list_active

pytestmark = pytest.mark.django_db


@pytest.fixture
def writers(alice):
    group = Group.objects.create(name="writers")
    group.permissions.add(Permission.objects.get(codename="create_own_persona"))
    alice.groups.add(group)
    return group


@pytest.fixture
def open_model(provider):
    return ChatModel.objects.create(
        provider=provider, model_id="fake-echo-open", display_name="Open", enabled=True, offered_to_everyone=True
    )


def _fields(model, **extra):
    return {
        "name": "Numbat",
        "avatar": "🦔",
        "description": "Knows numbats",
        "greeting": "G'day",
        "system_prompt": "Talk about numbats.",
        "model": model.pk,
        "temperature": "0.4",
        **extra,
    }


def test_a_user_the_admin_allows_creates_a_private_persona(client, alice, bob, writers, open_model, persona):
    client.force_login(alice)

    response = client.post("/personas/new/", _fields(open_model))

    assert response.status_code == 302
    own = Persona.objects.get(owner=alice)
    assert (own.name, own.temperature, own.model, own.is_published) == ("Numbat", 0.4, open_model, False)
    assert own in persona_list_active(user=alice)
    assert own not in persona_list_active(user=bob)
    client.force_login(bob)
    assert "Numbat" not in client.get("/").text
    assert client.post("/c/", {"persona": own.slug}).status_code == 400  # not his to chat with


def test_a_published_persona_is_offered_to_everyone(alice, bob, open_model):
    own = Persona.objects.create(name="Shared", slug="u-shared", model=open_model, owner=alice, is_published=True)

    assert own in persona_list_active(user=bob)


def test_without_the_permission_no_persona_can_be_created(client, alice, open_model):
    client.force_login(alice)

    assert client.post("/personas/new/", _fields(open_model)).status_code == 403
    assert "has not allowed you" in client.get("/personas/").text
    assert not Persona.objects.filter(owner=alice).exists()


def test_only_models_offered_to_everyone_can_be_picked(client, alice, writers, persona):
    client.force_login(alice)

    response = client.post("/personas/new/", _fields(persona.model))

    assert response.status_code == 400
    assert not Persona.objects.filter(owner=alice).exists()


def test_site_personas_and_other_users_personas_cannot_be_edited_or_deleted(
    client, alice, bob, writers, persona, open_model
):
    bobs = Persona.objects.create(name="Bob's", slug="u-bobs", model=open_model, owner=bob)
    client.force_login(alice)

    for slug in (persona.slug, bobs.slug):
        assert client.get(f"/personas/{slug}/").status_code == 404
        assert client.post(f"/personas/{slug}/", _fields(open_model, name="Hijacked")).status_code == 404
        assert client.post(f"/personas/{slug}/delete/").status_code == 404
    assert set(Persona.objects.values_list("name", flat=True)) == {"Assistant", "Bob's"}


def test_the_owner_edits_and_deletes_their_persona(client, alice, writers, open_model):
    own = Persona.objects.create(name="Mine", slug="u-mine", model=open_model, owner=alice, is_published=True)
    client.force_login(alice)

    assert client.post(f"/personas/{own.slug}/", _fields(open_model, name="Renamed")).status_code == 302
    own.refresh_from_db()
    assert (own.name, own.is_published) == ("Renamed", False)
    assert client.post(f"/personas/{own.slug}/delete/").status_code == 302
    assert not Persona.objects.filter(pk=own.pk).exists()


def test_an_owners_edit_of_a_published_persona_unpublishes_it_until_the_admin_publishes_again(
    client, alice, bob, writers, open_model
):
    own = Persona.objects.create(
        name="Numbat", slug="u-numbat", model=open_model, owner=alice, is_published=True, **_stored(_fields(open_model))
    )
    client.force_login(alice)
    assert "until an admin publishes it again" in client.get(f"/personas/{own.slug}/").text

    unchanged = client.post(f"/personas/{own.slug}/", _fields(open_model))
    own.refresh_from_db()
    assert (unchanged.status_code, own.is_published) == (302, True)  # nothing changed, nothing to review

    changed = client.post(f"/personas/{own.slug}/", _fields(open_model, system_prompt="Say something unreviewed."))
    own.refresh_from_db()
    assert (changed.status_code, own.system_prompt, own.is_published) == (302, "Say something unreviewed.", False)
    assert own not in persona_list_active(user=bob)
    assert "until an admin publishes it again" not in client.get(f"/personas/{own.slug}/").text


def _stored(fields: dict) -> dict:
    """The form's fields as the model stores them (no model, temperature a number)."""
    stored = {name: value for name, value in fields.items() if name not in ("name", "model")}
    return {**stored, "temperature": float(stored["temperature"])}
