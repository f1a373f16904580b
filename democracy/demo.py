"""Demo data for democracy: the wards of the fictional Northmoor District Council."""

from __future__ import annotations

from citizenhub.demo import DemoOptions, SeedCounts, register_demo_seeder
from democracy.models import Ward

# E05 is England's ward prefix; the E05099 block is far above the codes ONS has issued so far,
# so these are not mistaken for real wards.
NORTHMOOR_WARDS: tuple[tuple[str, str], ...] = (
    ("E05099001", "Abbey"),
    ("E05099002", "Ashfield"),
    ("E05099003", "Brookvale"),
    ("E05099004", "Castle"),
    ("E05099005", "Highfield"),
    ("E05099006", "Kingsmead"),
    ("E05099007", "Millbrook"),
    ("E05099008", "Northmoor Central"),
    ("E05099009", "Pen-y-bryn"),
    ("E05099010", "Riverside"),
    ("E05099011", "St Mary's"),
    ("E05099012", "Westgate"),
)


@register_demo_seeder("wards", order=10)
def seed_demo_wards(options: DemoOptions) -> SeedCounts:
    for gss_code, name in NORTHMOOR_WARDS:
        Ward.objects.update_or_create(gss_code=gss_code, defaults={"name": name})
    return {"wards": len(NORTHMOOR_WARDS)}
