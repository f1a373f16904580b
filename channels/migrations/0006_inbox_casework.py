"""The unified inbox and casework: a thread's team and case, routing rules that open cases,
and the indexes the inbox filters by (team, assignee, citizen; newest activity first).

The new columns are nullable (or have a default), so adding them rewrites no table.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0005_lz4_message_compression"),
        # Team and ServiceCase arrive in 0002.
        ("citizenhub", "0002_service_cases"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="routingrule",
            name="opens_case",
            field=models.BooleanField(
                default=False,
                help_text="Open a case of the rule's service for every new conversation it "
                "routes (needs a service code).",
            ),
        ),
        migrations.AddField(
            model_name="routingrule",
            name="team",
            field=models.ForeignKey(
                blank=True,
                help_text="The team whose inbox new conversations go to; empty for the "
                "service's team.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="routing_rules",
                to="citizenhub.team",
            ),
        ),
        migrations.AddField(
            model_name="thread",
            name="case",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="threads",
                to="citizenhub.servicecase",
            ),
        ),
        migrations.AddField(
            model_name="thread",
            name="team",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="threads",
                to="citizenhub.team",
            ),
        ),
        migrations.AddIndex(
            model_name="thread",
            index=models.Index(
                fields=["team", "status", "-last_message_at"], name="thread_team_inbox_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="thread",
            index=models.Index(
                fields=["assigned_to", "status", "-last_message_at"],
                name="thread_assignee_inbox_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="thread",
            index=models.Index(
                fields=["citizen", "-last_message_at"], name="thread_citizen_recent_idx"
            ),
        ),
    ]
