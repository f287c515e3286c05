from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("transfer", "0001_initial"),
        ("conversations", "0005_importjob_moved_to_transfer"),
    ]

    operations = [
        migrations.AlterModelTable(name="importjob", table=None),
    ]
