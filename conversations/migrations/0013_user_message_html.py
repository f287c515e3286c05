"""Store the HTML of user messages saved before math was rendered in them (their `content_html` was "")."""

from django.db import migrations

BATCH_SIZE = 500


def fill_user_message_html(apps, schema_editor):
    # Today's renderer, as `manage.py rerender_replies` uses: the historical model has no methods.
    from conversations.rendering import render_user_text

    Message = apps.get_model("conversations", "Message")
    rows = Message.objects.filter(role="user", content_html="").exclude(content="").only("id", "content")
    last_id = 0
    while batch := list(rows.filter(id__gt=last_id).order_by("id")[:BATCH_SIZE]):
        last_id = batch[-1].id
        for message in batch:
            message.content_html = str(render_user_text(message.content))
        Message.objects.bulk_update(batch, ["content_html"])


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0012_folders_and_pins"),
    ]

    operations = [
        migrations.RunPython(fill_user_message_html, migrations.RunPython.noop),
    ]
