"""Photos attached to reports: checked by content, re-encoded without EXIF, stored under
MEDIA_ROOT, and served only to the resident whose case it is and to staff who may read it."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from citizenhub.models import AuditEvent, CaseAttachment, Team
from citizenhub.services.attachments import (
    attach_file,
    clean_original_name,
    download_name,
    prepare_image,
)
from citizenhub.staff.access import ensure_staff_groups
from tests.factories import ServiceCaseFactory, ServiceFactory, StaffUserFactory, TeamFactory

GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F


def photo_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (64, 32),
    *,
    with_gps: bool = True,
    orientation: int | None = None,
    color=(200, 30, 30),
) -> bytes:
    """An image as a phone would send it: EXIF with the camera and where it was taken."""
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker"
    if with_gps:
        exif[GPS_IFD] = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}
    if orientation:
        exif[ORIENTATION] = orientation
    out = io.BytesIO()
    image.save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def upload(name: str = "pothole.jpg", content: bytes | None = None, content_type="image/jpeg"):
    return SimpleUploadedFile(
        name, photo_bytes() if content is None else content, content_type=content_type
    )


# A Windows program starts with "MZ"; renamed .jpg it must still be refused.
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims 10 billion pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def files_under(root) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()]


# --- Checking and re-encoding --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_accepted_photos_are_reencoded_without_exif(fmt, mime):
    original = photo_bytes(fmt)
    assert b"PhoneMaker" in original  # the fixture really carries EXIF

    prepared = prepare_image(upload(f"photo.{fmt.lower()}", original))

    assert prepared.content_type == mime
    assert b"PhoneMaker" not in prepared.content
    reopened = Image.open(io.BytesIO(prepared.content))
    assert reopened.format == fmt
    assert reopened.size == (64, 32)
    assert not reopened.getexif()  # no GPS position, no camera
    assert prepared.sha256 == hashlib.sha256(prepared.content).hexdigest()
    assert prepared.size == len(prepared.content)


def test_the_type_comes_from_the_content_not_the_name():
    # A PNG called .jpg is stored as what it is.
    prepared = prepare_image(upload("holiday.jpg", photo_bytes("PNG")))
    assert prepared.content_type == "image/png"


def test_orientation_is_applied_before_exif_is_dropped():
    # Orientation 6: the camera was turned; the stored pixels are turned instead.
    prepared = prepare_image(upload(content=photo_bytes(size=(64, 32), orientation=6)))
    assert Image.open(io.BytesIO(prepared.content)).size == (32, 64)


def test_large_photos_are_scaled_down(settings):
    settings.PORTAL_IMAGE_MAX_EDGE = 40
    prepared = prepare_image(upload(content=photo_bytes(size=(80, 20))))
    assert Image.open(io.BytesIO(prepared.content)).size == (40, 10)


def test_a_program_renamed_jpg_is_refused():
    with pytest.raises(ValidationError) as caught:
        prepare_image(upload("cat.jpg", EXE_BYTES))
    assert caught.value.code == "wrong_type"
    assert "“cat.jpg” must be a JPG, PNG or WebP image." in caught.value.messages


@pytest.mark.parametrize(
    "content",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"GIF89a" + b"\x00" * 100,
        b"%PDF-1.7\n" + b"\x00" * 100,
        b"just some text",
    ],
)
def test_other_types_are_refused(content):
    with pytest.raises(ValidationError) as caught:
        prepare_image(upload("file.jpg", content))
    assert caught.value.code == "wrong_type"


def test_empty_and_oversize_files_are_refused(settings):
    with pytest.raises(ValidationError) as caught:
        prepare_image(upload("empty.jpg", b""))
    assert caught.value.code == "empty"

    settings.PORTAL_UPLOAD_MAX_BYTES = 100
    with pytest.raises(ValidationError) as caught:
        prepare_image(upload("big.jpg", photo_bytes()))
    assert caught.value.code == "too_large"
    assert "must be smaller than 100\xa0bytes" in caught.value.messages[0]


def test_a_damaged_photo_is_refused():
    truncated = photo_bytes(size=(400, 400))[:300]
    with pytest.raises(ValidationError) as caught:
        prepare_image(upload("broken.jpg", truncated))
    assert caught.value.code == "unreadable"


def test_a_decompression_bomb_is_refused_before_decoding():
    bomb = png_bomb_bytes()
    assert len(bomb) < 200  # tiny on disk, 10 billion pixels once decoded
    with pytest.raises(ValidationError) as caught:
        prepare_image(upload("bomb.png", bomb))
    assert caught.value.code == "too_many_pixels"


def test_the_pixel_limit_is_a_setting(settings):
    settings.PORTAL_UPLOAD_MAX_PIXELS = 100
    with pytest.raises(ValidationError) as caught:
        prepare_image(upload(content=photo_bytes(size=(20, 20))))
    assert caught.value.code == "too_many_pixels"


def test_names_are_cleaned_for_display_and_download():
    assert clean_original_name("C:\\Users\\me\\..\\pot\x00hole.jpg") == "pothole.jpg"
    assert clean_original_name("../../etc/passwd") == "passwd"
    attachment = CaseAttachment(
        original_name='a"; filename=evil.html.jpg', content_type="image/png"
    )
    assert download_name(attachment) == "a-filename-evil-html.png"
    assert download_name(CaseAttachment(original_name="", content_type="image/jpeg")) == "photo.jpg"


# --- Storing --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_attach_file_stores_the_reencoded_photo_under_media_root(settings, resident):
    case = ServiceCaseFactory(citizen=resident.citizen)

    attachment = attach_file(
        case=case, uploaded_file=upload("pothole.jpg"), citizen=resident.citizen, user=resident
    )

    attachment.refresh_from_db()
    stored = Path(settings.MEDIA_ROOT) / attachment.file.name
    assert stored.is_file()
    assert attachment.file.name.startswith("case-attachments/")
    assert "pothole" not in attachment.file.name  # the resident's name never reaches the disk
    content = stored.read_bytes()
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert attachment.size == len(content)
    assert attachment.content_type == "image/jpeg"
    assert attachment.original_name == "pothole.jpg"
    assert attachment.citizen == resident.citizen
    assert attachment.uploaded_by == resident
    assert b"PhoneMaker" not in content


@pytest.mark.django_db
def test_attach_file_checks_a_raw_upload_and_stores_nothing_when_refused(settings):
    case = ServiceCaseFactory()
    with pytest.raises(ValidationError):
        attach_file(case=case, uploaded_file=upload("x.jpg", EXE_BYTES), citizen=None, user=None)
    assert not CaseAttachment.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == []


@pytest.mark.django_db
def test_attach_file_removes_the_file_when_the_row_cannot_be_saved(settings, monkeypatch):
    case = ServiceCaseFactory()

    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(CaseAttachment, "save", broken_save)
    with pytest.raises(RuntimeError):
        attach_file(case=case, uploaded_file=upload(), citizen=None, user=None)
    assert files_under(settings.MEDIA_ROOT) == []


# --- Serving --------------------------------------------------------------------------------


@pytest.fixture
def residents_photo(resident):
    case = ServiceCaseFactory(citizen=resident.citizen)
    return attach_file(
        case=case, uploaded_file=upload("pothole.jpg"), citizen=resident.citizen, user=resident
    )


def url_of(attachment: CaseAttachment) -> str:
    return f"/attachments/{attachment.public_id}/"


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.django_db
def test_the_owner_gets_the_stored_photo_with_safe_headers(resident_client, residents_photo):
    response = resident_client.get(url_of(residents_photo))

    assert response.status_code == 200
    assert body(response) == residents_photo.file.storage.open(residents_photo.file.name).read()
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"] == 'inline; filename="pothole.jpg"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_owner_gets_exactly_the_reencoded_bytes_of_an_uploaded_photo(resident_client, resident):
    original = photo_bytes("PNG", size=(30, 30))
    case = ServiceCaseFactory(citizen=resident.citizen)
    attachment = attach_file(
        case=case, uploaded_file=upload("p.png", original), citizen=resident.citizen, user=resident
    )
    expected = prepare_image(upload("p.png", original)).content

    served = body(resident_client.get(url_of(attachment)))

    assert served == expected
    assert served != original  # re-encoded: the EXIF is gone
    assert hashlib.sha256(served).hexdigest() == attachment.sha256


@pytest.mark.django_db
def test_another_resident_gets_404(client, other_resident, residents_photo):
    client.force_login(other_resident)
    assert client.get(url_of(residents_photo)).status_code == 404


@pytest.mark.django_db
def test_anonymous_visitors_get_404_not_a_login_page(client, residents_photo):
    response = client.get(url_of(residents_photo))
    assert response.status_code == 404


@pytest.mark.django_db
def test_an_unknown_or_malformed_id_gets_404(resident_client, residents_photo):
    assert (
        resident_client.get("/attachments/6f1b2c1e-0000-4000-8000-000000000000/").status_code == 404
    )
    assert resident_client.get("/attachments/not-a-uuid/").status_code == 404


@pytest.mark.django_db
def test_a_staff_member_without_case_permissions_gets_404(client, residents_photo):
    client.force_login(StaffUserFactory())  # staff, but in no role group
    assert client.get(url_of(residents_photo)).status_code == 404


@pytest.mark.django_db
def test_a_caseworker_gets_the_photo_and_the_view_is_audited(client, caseworker, residents_photo):
    client.force_login(caseworker)
    response = client.get(url_of(residents_photo))
    assert response.status_code == 200
    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW, actor=caseworker)
    assert event.citizen == residents_photo.case.citizen
    assert event.details["case"] == residents_photo.case.reference


@pytest.mark.django_db
def test_a_sensitive_case_photo_is_only_for_its_team(client, caseworker, resident):
    team = TeamFactory(slug="adult-care")
    service = ServiceFactory(code="adult-care", team=team, is_sensitive=True)
    case = ServiceCaseFactory(citizen=resident.citizen, service=service)
    attachment = attach_file(case=case, uploaded_file=upload(), citizen=resident.citizen, user=None)
    client.force_login(caseworker)

    assert client.get(url_of(attachment)).status_code == 404

    team.members.add(caseworker)
    caseworker = type(caseworker).objects.get(pk=caseworker.pk)  # forget cached teams
    client.force_login(caseworker)
    assert client.get(url_of(attachment)).status_code == 200


@pytest.mark.django_db
@pytest.mark.mfa_required
def test_staff_without_an_authenticator_get_404(client, caseworker, residents_photo):
    # /staff/ pages send them to set up TOTP; the files must not be a way round that.
    client.force_login(caseworker)
    assert client.get(url_of(residents_photo)).status_code == 404


@pytest.mark.django_db
def test_an_anonymised_case_photo_is_not_served(resident_client, residents_photo):
    from django.utils import timezone

    type(residents_photo.case).objects.filter(pk=residents_photo.case_id).update(
        anonymised_at=timezone.now()
    )
    assert resident_client.get(url_of(residents_photo)).status_code == 404


@pytest.mark.django_db
def test_a_missing_file_gives_404_not_500(resident_client, residents_photo):
    residents_photo.file.storage.delete(residents_photo.file.name)
    assert resident_client.get(url_of(residents_photo)).status_code == 404


# --- The staff case page's panel ----------------------------------------------------------


@pytest.mark.django_db
def test_the_case_page_lists_the_photos(client, caseworker, residents_photo):
    client.force_login(caseworker)
    html = client.get(f"/staff/cases/{residents_photo.case.reference}/").content.decode()
    assert 'data-panel="attachments"' in html
    assert url_of(residents_photo) in html
    assert "pothole.jpg" in html


@pytest.mark.django_db
def test_the_panel_is_absent_without_photos(client, caseworker):
    case = ServiceCaseFactory()
    client.force_login(caseworker)
    html = client.get(f"/staff/cases/{case.reference}/").content.decode()
    assert 'data-panel="attachments"' not in html


@pytest.mark.django_db
def test_the_panel_is_absent_for_an_officer_who_cannot_read_the_case(rf, resident):
    from citizenhub.staff.views.attachments_panel import case_attachments_panel

    team = TeamFactory(slug="bereavement")
    service = ServiceFactory(code="bereavement", team=team, is_sensitive=True)
    case = ServiceCaseFactory(citizen=resident.citizen, service=service)
    attach_file(case=case, uploaded_file=upload(), citizen=resident.citizen, user=None)
    ensure_staff_groups()
    officer = StaffUserFactory()
    request = rf.get("/")
    request.user = officer
    assert case_attachments_panel(request, case) is None
    Team.objects.get(slug="bereavement").members.add(officer)
    request.user = type(officer).objects.get(pk=officer.pk)
    panel = case_attachments_panel(request, case)
    assert panel is not None and len(panel.context["attachments"]) == 1
