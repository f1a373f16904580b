"""The consent ledger, append-only twice over: the model refuses edits and deletes, and on
PostgreSQL a trigger refuses them whatever code (or psql session) tries. The trigger allows
the two updates that keep what was consented to: moving a record to another profile of the
same person (merge, unmerge) and forgetting a deleted account (actor_id to NULL)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION engagement_consent_record_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'The consent ledger is append-only: record % cannot be deleted', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF (to_jsonb(NEW) - 'citizen_id' - 'actor_id') IS DISTINCT FROM
           (to_jsonb(OLD) - 'citizen_id' - 'actor_id')
       OR (NEW.actor_id IS DISTINCT FROM OLD.actor_id AND NEW.actor_id IS NOT NULL) THEN
        RAISE EXCEPTION 'The consent ledger is append-only: record % cannot be changed', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER engagement_consent_record_append_only
    BEFORE UPDATE OR DELETE ON engagement_consentrecord
    FOR EACH ROW EXECUTE FUNCTION engagement_consent_record_append_only();
"""
DROP_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS engagement_consent_record_append_only ON engagement_consentrecord;
DROP FUNCTION IF EXISTS engagement_consent_record_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            # No parameters: the SQL has literal % signs (RAISE placeholders).
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("citizenhub", "0007_portal_attachments_verification"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsentRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("purpose", models.SlugField(max_length=64)),
                ("channel", models.CharField(max_length=16)),
                (
                    "action",
                    models.CharField(
                        choices=[("given", "Given"), ("withdrawn", "Withdrawn")], max_length=16
                    ),
                ),
                (
                    "lawful_basis",
                    models.CharField(
                        choices=[
                            ("consent", "Consent"),
                            ("public_task", "Public task"),
                            ("legal_obligation", "Legal obligation"),
                            ("legitimate_interest", "Legitimate interests"),
                        ],
                        default="consent",
                        max_length=24,
                    ),
                ),
                ("wording", models.TextField(help_text="The exact text the person was shown.")),
                ("wording_version", models.CharField(max_length=32)),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("portal", "Residents' portal"),
                            ("web_form", "Web form"),
                            ("staff", "Council staff"),
                            ("api", "Council system (API)"),
                            ("import", "Import"),
                        ],
                        max_length=16,
                    ),
                ),
                ("actor_label", models.CharField(max_length=150)),
                ("occurred_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("ip_address", models.GenericIPAddressField(blank=True, null=True)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "citizen",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="consent_records",
                        to="citizenhub.citizen",
                    ),
                ),
            ],
            options={
                "base_manager_name": "objects",
                "indexes": [
                    models.Index(
                        fields=["citizen", "purpose", "channel", "-occurred_at", "-id"],
                        name="consent_citizen_latest_idx",
                    )
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("action__in", ["given", "withdrawn"])),
                        name="consent_record_action_valid",
                    )
                ],
            },
        ),
        migrations.RunPython(
            _on_postgresql(APPEND_ONLY_SQL), _on_postgresql(DROP_APPEND_ONLY_SQL), elidable=False
        ),
    ]
