"""Resident isolation: nothing of one resident reaches another.

Every URL a resident can call — each /my/ page, each /api/v1/me/ endpoint, each attachment
link — is enumerated from the URL configuration itself, so a page added later is covered
(or fails here until it says how to fill its parameters). For each one:

- a URL with an id (case reference, attachment, contact point, conversation …) filled with
  ANOTHER resident's id answers 404 to GET and to POST, exactly as for an id that does not
  exist: no data and no sign that it exists; nothing is changed by the POST;
- a URL without an id (lists, forms, exports) answers the signed-in resident with their
  own data and never the other resident's.
"""

from __future__ import annotations

import datetime
import io
import re
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from citizenhub.models import ContactVerification, ServiceCase
from citizenhub.services.attachments import attach_file
from citizenhub.services.cases import case_record_message, open_case
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

# What a resident can reach: the portal's /my/ pages, their API, and attachment links.
RESIDENT_PREFIXES = ("my/", "api/v1/me/", "attachments/")


def resident_routes() -> list[tuple[str, str, tuple[str, ...]]]:
    """(route, view name with namespaces, parameter names) for every resident URL."""
    found: list[tuple[str, str, tuple[str, ...]]] = []

    def walk(patterns, prefix: str, namespace: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                ns = namespace
                if entry.namespace:
                    ns = f"{namespace}{entry.namespace}:"
                walk(entry.url_patterns, route, ns)
            elif isinstance(entry, URLPattern) and route.startswith(RESIDENT_PREFIXES):
                assert entry.name, f"resident URL {route!r} has no name"
                params = (
                    tuple(entry.pattern.converters)
                    if hasattr(entry.pattern, "converters")
                    else tuple(entry.pattern.regex.groupindex)
                )
                found.append((route, f"{namespace}{entry.name}", params))

    walk(get_resolver().url_patterns, "", "")
    return found


def jpeg_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def same_page(body: str, url: str) -> str:
    """A page with what differs by request alone masked: its own URL, the CSRF token."""
    return CSRF_TOKEN.sub("csrf", body.replace(url, "<url>"))


class World:
    """Everything the other resident has, with the values that fill URL parameters."""

    def __init__(self, resident, other) -> None:
        service = ServiceFactory(code="pothole", name="Pothole", is_public=True)
        self.own_case = open_case(
            service=service, title="My pothole", description="Mine", citizen=resident.citizen
        )
        self.case = open_case(
            service=service,
            title="Gareth's secret pothole",
            description="Outside Gareth's house, 12 Secret Street",
            citizen=other.citizen,
        )
        case_record_message(
            case=self.case,
            kind="resident_update",
            text="Gareth's private follow-up",
            data={},
            actor=None,
            actor_label="resident",
        )
        self.attachment = attach_file(
            case=self.case,
            uploaded_file=SimpleUploadedFile("g.jpg", jpeg_bytes(), content_type="image/jpeg"),
            citizen=other.citizen,
            user=other,
        )
        self.contact_point = other.citizen.contact_points.first()
        # A phone number the other resident typed and has not confirmed yet.
        self.verification = ContactVerification.objects.create(
            citizen=other.citizen,
            kind="phone",
            value="07700 900555",
            normalised="+447700900555",
            match_key="+447700900555",
            code_hash="not-a-code",
            expires_at=timezone.now() + datetime.timedelta(minutes=10),
        )
        self.secrets = [
            self.case.reference,
            "Gareth's secret pothole",
            "12 Secret Street",
            "Gareth's private follow-up",
            other.email,
        ]
        self.thread = _other_thread(other.citizen)
        if self.thread is not None:
            self.secrets.append(self.thread.subject)

    def values(self, param: str, *, missing: bool) -> object:
        """The other resident's id for a URL parameter (or one that exists for nobody)."""
        if param == "kind":  # which request form (/my/data/requests/<kind>/): not an id
            return "erasure"
        if param in ("reference", "case_reference"):
            return "CH-2026-999999" if missing else self.case.reference
        if param in ("public_id", "attachment_id", "uuid"):
            return uuid.uuid4() if missing else self.attachment.public_id
        if param in ("contact_point_id", "contact_id", "pk"):
            return 99_999_999 if missing else self.contact_point.pk
        if param == "verification_id":
            return 99_999_999 if missing else self.verification.pk
        if param in ("thread_id", "thread_reference", "conversation_id"):
            if self.thread is None:
                pytest.fail("no conversation of the other resident to test with")
            if "reference" in param:
                return "T-NOPE" if missing else self.thread.reference
            return 99_999_999 if missing else self.thread.pk
        pytest.fail(
            f"test_isolation does not know how to fill URL parameter {param!r}: add it to "
            "World.values so the new page is covered"
        )


def _other_thread(citizen):
    from channels.models import Channel, Thread

    channel = Channel.objects.create(
        kind="email-smtp", slug="iso", name="Mailbox", address="contact@example.gov.uk"
    )
    return Thread.objects.create(channel=channel, citizen=citizen, subject="Gareth's bin saga")


@pytest.fixture
def world(resident, other_resident):
    return World(resident, other_resident)


def test_resident_routes_are_found():
    names = {name for _route, name, _params in resident_routes()}
    # The enumeration itself must see the portal; if it saw nothing the test below would
    # pass vacuously.
    assert "portal:my-cases" in names
    assert any(route.startswith("api/v1/me/") for route, _n, _p in resident_routes())
    assert any(route.startswith("attachments/") for route, _n, _p in resident_routes())


# URL parameters that choose a form rather than name somebody's record.
CHOICE_PARAMS = {"kind"}


def takes_an_id(params: tuple[str, ...]) -> bool:
    return any(param not in CHOICE_PARAMS for param in params)


def test_another_residents_ids_are_not_found(resident_client, world):
    routes = [r for r in resident_routes() if takes_an_id(r[2])]
    assert routes, "no resident URL takes an id"
    before = (ServiceCase.objects.get(pk=world.case.pk).version, world.case.events.count())
    checked = []
    for _route, name, params in routes:
        theirs = reverse(name, kwargs={p: world.values(p, missing=False) for p in params})
        nobodys = reverse(name, kwargs={p: world.values(p, missing=True) for p in params})
        for method in ("get", "post"):
            call = getattr(resident_client, method)
            response = call(theirs)
            control = call(nobodys)
            # A page that only answers one method may refuse the other before looking
            # anything up (405), as long as it answers another resident's id and an unknown
            # one alike; every page must answer 404 to one method at least (checked below).
            expected = (404, 405)
            assert response.status_code in expected, (
                f"{method.upper()} {theirs}: {response.status_code}"
            )
            assert control.status_code == response.status_code, (
                f"{method.upper()} {nobodys}: {control.status_code}"
            )
            # The page may repeat the address it was asked for (the language toggle returns
            # to it); that is not the other resident's data.
            body = same_page(response.content.decode(errors="replace"), theirs)
            for secret in world.secrets:
                assert secret not in body, f"{method.upper()} {theirs} shows {secret!r}"
            nobody_body = control.content.decode(errors="replace")
            assert body == same_page(nobody_body, nobodys), (
                f"{method.upper()} {theirs}: the 404 differs from the one for an unknown id"
            )
            checked.append((name, response.status_code))
    after = (ServiceCase.objects.get(pk=world.case.pk).version, world.case.events.count())
    assert after == before, "a POST to another resident's case changed it"
    assert {name for name, status in checked if status == 404} == {r[1] for r in routes}, (
        "every page taking an id must look it up and answer 404 to one method at least"
    )


def test_lists_and_exports_show_only_the_residents_own_data(resident_client, world):
    routes = [r for r in resident_routes() if not takes_an_id(r[2])]
    assert routes
    for _route, name, params in routes:
        url = reverse(name, kwargs={p: world.values(p, missing=False) for p in params})
        response = resident_client.get(url)
        assert response.status_code in (200, 302, 405), f"GET {url}: {response.status_code}"
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode(errors="replace")
        for secret in world.secrets:
            assert secret not in text, f"GET {url} shows another resident's {secret!r}"
    own = resident_client.get("/my/cases/").content.decode()
    assert world.own_case.reference in own


def test_signed_out_visitors_reach_no_resident_data(client, world):
    for _route, name, params in resident_routes():
        url = reverse(name, kwargs={p: world.values(p, missing=False) for p in params})
        response = client.get(url)
        assert response.status_code in (302, 401, 403, 404), f"GET {url}: {response.status_code}"
        text = response.content.decode(errors="replace") if not response.streaming else ""
        for secret in world.secrets:
            assert secret not in text, f"GET {url} signed out shows {secret!r}"
