"""Ward names for the core's reports, supplied by whichever app knows them.

The core stores wards as ONS GSS codes (Address.ward_code) and must not import the democracy
app, which owns the Ward table. Like the staff page panels (citizenhub/staff/panels.py), the
app that knows the names registers a lookup in its AppConfig.ready():

    register_ward_name_lookup("democracy", names_for_codes)

A lookup takes a collection of codes and returns {code: name} for those it knows, in one
query whatever the number of codes (report pages assert their query count). With nothing
registered, reports show the codes alone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

WardNameLookup = Callable[[Collection[str]], Mapping[str, str]]

# Keyed by a name so that ready() running twice (tests, autoreload) does not add it twice.
_lookups: dict[str, WardNameLookup] = {}


def register_ward_name_lookup(key: str, lookup: WardNameLookup) -> WardNameLookup:
    _lookups[key] = lookup
    return lookup


def unregister_ward_name_lookup(key: str) -> None:
    _lookups.pop(key, None)


def ward_names(codes: Collection[str]) -> dict[str, str]:
    """{code: name} for the codes some registered lookup knows; unknown codes are left out."""
    wanted = {code for code in codes if code}
    names: dict[str, str] = {}
    if not wanted:
        return names
    for lookup in _lookups.values():
        missing = wanted - names.keys()
        if not missing:
            break
        names.update(
            {code: name for code, name in lookup(missing).items() if code in missing and name}
        )
    return names
