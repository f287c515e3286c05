from django.db import migrations
from django.db.models import OuterRef, Subquery


def group_messages_to_senders(apps, schema_editor):
    """Give each question asked in an IM group chat, and its reply, to the member who sent it.

    conversations' 0015 recorded the conversation's owner (the group's own
    account) as their asker; the delivery of each message knows its sender.
    """
    Delivery = apps.get_model("bots", "Delivery")
    BotIdentity = apps.get_model("bots", "BotIdentity")
    Message = apps.get_model("conversations", "Message")
    sender = BotIdentity.objects.filter(
        channel_id=OuterRef("channel_id"), platform_user_id=OuterRef("sender_id")
    ).values("user_id")[:1]
    rows = (
        Delivery.objects.filter(chat__is_group=True, reply__isnull=False)
        .annotate(sender_user_id=Subquery(sender))
        .filter(sender_user_id__isnull=False)
        .values_list("reply_id", "reply__parent_id", "sender_user_id")
    )
    for reply_id, question_id, user_id in rows.iterator():
        Message.objects.filter(pk__in=[reply_id, question_id]).update(asked_by_id=user_id)


class Migration(migrations.Migration):
    dependencies = [
        ("bots", "0001_bot_channels"),
        ("conversations", "0015_message_asked_by"),
    ]

    operations = [migrations.RunPython(group_messages_to_senders, migrations.RunPython.noop)]
