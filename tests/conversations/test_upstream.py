"""Assembling the upstream request and checking a conversation can get a reply."""

import pytest
from django.core.exceptions import ValidationError

from conversations import services, upstream
from personas.models import Persona

pytestmark = pytest.mark.django_db


def job_for(conversation):
    sent = services.message_send(conversation=conversation, text="question")
    return upstream.reply_job_build(conversation=conversation, message=sent.assistant_message)


def test_job_carries_persona_parameters_and_provider(alice, make_persona, provider):
    persona = make_persona(system_prompt="Be kind.", temperature=1.2, top_p=0.5, max_tokens=99)
    job = job_for(services.conversation_create(owner=alice, persona=persona))
    assert job.request.messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "question"},
    ]
    assert (job.request.temperature, job.request.top_p, job.request.max_tokens) == (1.2, 0.5, 99)
    assert job.config.base_url == provider.base_url and job.config.api_key == "sk-test-secret-key-1234"
    assert "sk-test" not in repr(job.config)


def test_blank_system_prompt_is_left_out_and_max_tokens_falls_back_to_the_model(alice, make_persona):
    persona = make_persona(system_prompt=" ", max_tokens=None)
    persona.model.max_output_tokens = 512
    persona.model.save()
    job = job_for(services.conversation_create(owner=alice, persona=persona))
    assert job.request.messages[0]["role"] == "assistant"
    assert job.request.max_tokens == 512 and job.request.temperature is None


@pytest.mark.parametrize("change", ["inactive", "disabled", "deleted", "bad-key"])
def test_upstream_check_refuses_unusable_personas(alice, persona, provider, change):
    conversation = services.conversation_create(owner=alice, persona=persona)
    if change == "inactive":
        Persona.objects.filter(pk=persona.pk).update(is_active=False)
    elif change == "disabled":
        persona.model.enabled = False
        persona.model.save()
    elif change == "deleted":
        persona.delete()
    else:
        provider.api_key_encrypted = "not-a-fernet-token"
        provider.save()
    conversation.refresh_from_db()
    with pytest.raises(ValidationError):
        upstream.upstream_check(conversation=conversation)


def test_a_saved_message_records_its_token_cost_and_a_send_does_not_tokenize_the_history(
    alice, make_persona, monkeypatch
):
    from llm import tokens

    persona = make_persona(history_limit=50)
    conversation = services.conversation_create(owner=alice, persona=persona)
    for i in range(20):
        sent = services.message_send(conversation=conversation, text=f"question {i}")
        services.reply_finish(message=sent.assistant_message, content=f"answer {i}", status="complete")
    question = conversation.messages.filter(role="user").last()
    model_id = persona.model.model_id
    assert question.content_tokens == tokens.count_tokens("question 19", model_id=model_id)
    assert question.tokens_counter == tokens.counter_name(model_id)
    assert sent.assistant_message.content_tokens == tokens.count_tokens("answer 19", model_id=model_id)

    counted: list[str] = []
    count = tokens.count_tokens
    monkeypatch.setattr(
        tokens, "count_tokens", lambda text, *, model_id: counted.append(text) or count(text, model_id=model_id)
    )
    job = job_for(conversation)
    assert len(job.request.messages) == 43  # greeting, 40 earlier messages, the new question
    assert not [text for text in counted if text.startswith(("question", "answer"))]
