from collections.abc import Collection

from django.apps import AppConfig


def ward_names_for_codes(codes: Collection[str]) -> dict[str, str]:
    """{GSS code: ward name} in one query, for the core's reports (citizenhub/ward_names.py)."""
    from democracy.models import Ward

    wards = Ward.objects.filter(gss_code__in=list(codes)).order_by()
    return dict(wards.values_list("gss_code", "name"))


class DemocracyConfig(AppConfig):
    name = "democracy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from citizenhub.ward_names import register_ward_name_lookup

        register_ward_name_lookup("democracy", ward_names_for_codes)
