"""Template context every page needs: the council's name, and whether the page has scripts."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

# Pages that other websites embed (the council web forms, in an iframe or as the target of
# a plain HTML form) are plain HTML without JavaScript, so they behave the same inside any
# host page; base.html leaves GOV.UK Frontend's scripts out for them.
SCRIPT_FREE_VIEWS = frozenset({"channels:webform"})


def council(request: HttpRequest) -> dict[str, object]:
    match = getattr(request, "resolver_match", None)
    embedded = match is not None and match.view_name in SCRIPT_FREE_VIEWS
    return {"council_name": settings.COUNCIL_NAME, "page_scripts": not embedded}
