import pytest
from django.http import Http404

from conversations import selectors, services
from conversations.models import Conversation
from conversations.views.shortcuts import get_owned_or_404


@pytest.mark.django_db
def test_returns_the_owners_object(alice, persona):
    conversation = services.conversation_create(owner=alice, persona=persona)
    found = get_owned_or_404(selectors.conversation_get_for_user, user=alice, public_id=conversation.public_id)
    assert found == conversation


@pytest.mark.django_db
@pytest.mark.parametrize("public_id", ["theirs", "00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_another_users_unknown_and_malformed_ids_are_the_same_404(alice, bob, persona, public_id):
    theirs = services.conversation_create(owner=alice, persona=persona)
    with pytest.raises(Http404):
        get_owned_or_404(
            selectors.conversation_get_for_user,
            user=bob,
            public_id=theirs.public_id if public_id == "theirs" else public_id,
        )
    assert Conversation.objects.filter(pk=theirs.pk).exists()
