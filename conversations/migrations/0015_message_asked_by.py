import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Q, Subquery


def asked_by_backfill(apps, schema_editor):
    """Record the conversation's owner as the asker of every question and reply stored so far (not greetings).

    Until now the owner was whom a reply was counted for; IM group chats'
    messages are given to their senders by the bots app's own migration.
    """
    Message = apps.get_model("conversations", "Message")
    Conversation = apps.get_model("conversations", "Conversation")
    owner = Conversation.objects.filter(pk=OuterRef("conversation_id")).values("owner_id")[:1]
    Message.objects.exclude(Q(role="assistant") & Q(parent__isnull=True)).update(asked_by_id=Subquery(owner))


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0014_conversation_temperature"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="asked_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="asked by",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["asked_by", "created_at"], name="message_asked_by_created"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("status", "streaming")), fields=["asked_by"], name="message_asked_by_streaming"
            ),
        ),
        # Replaced by message_asked_by_streaming: the quota counts one user's streaming replies.
        migrations.RemoveIndex(model_name="message", name="message_streaming"),
        migrations.RunPython(asked_by_backfill, migrations.RunPython.noop),
    ]
