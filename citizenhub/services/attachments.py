"""Photos residents attach to their reports: checked by what the bytes are (never by the
file's name), decoded and re-encoded (which drops EXIF, including where the photo was
taken), and stored under MEDIA_ROOT, outside the web root, for a checking view to serve."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import filetype
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from PIL import Image, ImageOps

from citizenhub.models import CaseAttachment, Citizen, ServiceCase


@dataclass(frozen=True)
class ImageType:
    pillow_format: str
    extension: str


# The only types stored; anything else (including SVG, which can carry scripts) is refused.
ACCEPTED_IMAGE_TYPES: dict[str, ImageType] = {
    "image/jpeg": ImageType("JPEG", "jpg"),
    "image/png": ImageType("PNG", "png"),
    "image/webp": ImageType("WEBP", "webp"),
}
# filetype recognises every accepted type from the first bytes of the file.
_SNIFF_BYTES = 8192
_JPEG_QUALITY = 85
ORIGINAL_NAME_LIMIT = CaseAttachment._meta.get_field("original_name").max_length


@dataclass(frozen=True)
class PreparedImage:
    """An upload that passed every check, re-encoded and ready to store."""

    original_name: str
    content: bytes
    content_type: str
    sha256: str

    @property
    def size(self) -> int:
        return len(self.content)


def clean_original_name(name: str | None) -> str:
    """The resident's file name, for display only: no path, no control characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable())
    return name.strip()[:ORIGINAL_NAME_LIMIT]


def download_name(attachment: CaseAttachment) -> str:
    """A safe name to offer with the file: the original stem (letters, digits, dashes) and
    the extension of what the file really is."""
    image_type = ACCEPTED_IMAGE_TYPES.get(attachment.content_type)
    extension = image_type.extension if image_type else "bin"
    stem = (attachment.original_name or "").rsplit(".", 1)[0]
    stem = re.sub(r"[^\w\-]+", "-", stem, flags=re.ASCII).strip("-_")[:60]
    return f"{stem or 'photo'}.{extension}"


def _refused(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


def prepare_image(uploaded_file: UploadedFile) -> PreparedImage:
    """Check an uploaded photo and re-encode it; raises ValidationError with a message for
    the resident. Nothing is written anywhere."""
    name = clean_original_name(uploaded_file.name)
    shown = name or _("The selected file")
    size = uploaded_file.size or 0
    if size == 0:
        raise _refused(_("“%(name)s” is empty.") % {"name": shown}, "empty")
    limit = settings.PORTAL_UPLOAD_MAX_BYTES
    if size > limit:
        raise _refused(
            _("“%(name)s” must be smaller than %(limit)s.")
            % {"name": shown, "limit": filesizeformat(limit)},
            "too_large",
        )
    uploaded_file.seek(0)
    kind = filetype.guess(uploaded_file.read(_SNIFF_BYTES))
    image_type = ACCEPTED_IMAGE_TYPES.get(kind.mime) if kind else None
    if image_type is None:
        raise _refused(
            _("“%(name)s” must be a JPG, PNG or WebP image.") % {"name": shown},
            "wrong_type",
        )
    uploaded_file.seek(0)
    content = _reencode(uploaded_file, image_type, shown)
    return PreparedImage(
        original_name=name,
        content=content,
        content_type=kind.mime,
        sha256=hashlib.sha256(content).hexdigest(),
    )


def _reencode(uploaded_file: UploadedFile, image_type: ImageType, shown: str) -> bytes:
    too_many_pixels = _refused(
        _("“%(name)s” has too many pixels. Take a smaller photo and try again.") % {"name": shown},
        "too_many_pixels",
    )
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below is lower than Pillow's warning threshold; a warning
            # that still fires means an absurd image, which is refused like a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(uploaded_file, formats=[image_type.pillow_format]) as image:
                # The header says how big the decoded image would be: check before decoding.
                if image.width * image.height > settings.PORTAL_UPLOAD_MAX_PIXELS:
                    raise too_many_pixels
                image.load()
                # Stripping EXIF would also strip the orientation: apply it to the pixels.
                upright = ImageOps.exif_transpose(image)
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels from None
    except (OSError, SyntaxError, ValueError):
        raise _refused(
            _("“%(name)s” could not be opened as an image. It may be damaged: try another photo.")
            % {"name": shown},
            "unreadable",
        ) from None
    edge = settings.PORTAL_IMAGE_MAX_EDGE
    upright.thumbnail((edge, edge))
    output = io.BytesIO()
    if image_type.pillow_format == "JPEG":
        if upright.mode not in ("RGB", "L"):
            upright = upright.convert("RGB")
        # Only what is passed here is written: no EXIF (time, place, camera), no comments.
        upright.save(
            output,
            "JPEG",
            quality=_JPEG_QUALITY,
            optimize=True,
            exif=b"",
            icc_profile=upright.info.get("icc_profile"),
        )
    elif image_type.pillow_format == "PNG":
        if upright.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            upright = upright.convert("RGBA")
        clean = upright.copy()
        # PNG text chunks, XMP and EXIF would otherwise be copied across; keep transparency.
        clean.info = {k: v for k, v in upright.info.items() if k == "transparency"}
        clean.save(output, "PNG", optimize=True, exif=b"")
    else:
        if upright.mode not in ("RGB", "RGBA"):
            upright = upright.convert("RGBA" if "A" in upright.mode else "RGB")
        upright.save(output, "WEBP", quality=_JPEG_QUALITY, exif=b"", xmp=b"")
    return output.getvalue()


Actor = AbstractBaseUser | AnonymousUser | None


def attach_file(
    *,
    case: ServiceCase,
    uploaded_file: UploadedFile | PreparedImage,
    citizen: Citizen | None,
    user: Actor,
) -> CaseAttachment:
    """Check (unless already prepared), store and record a photo of the case.

    `citizen` is the resident it belongs to in the portal (None for an anonymous report);
    `user` is the signed-in account that uploaded it, if any. The file is written before
    the row: if the row cannot be saved the file is removed again. A caller that stores
    several files in one transaction removes them with `delete_stored_files` if it fails.
    """
    prepared = (
        uploaded_file if isinstance(uploaded_file, PreparedImage) else prepare_image(uploaded_file)
    )
    attachment = CaseAttachment(
        case=case,
        citizen=citizen,
        uploaded_by=user if user is not None and user.is_authenticated else None,
        original_name=prepared.original_name,
        content_type=prepared.content_type,
        size=prepared.size,
        sha256=prepared.sha256,
    )
    attachment.file.save(str(attachment.public_id), ContentFile(prepared.content), save=False)
    try:
        with transaction.atomic():
            attachment.save()
    except BaseException:
        attachment.file.delete(save=False)
        raise
    return attachment


def delete_stored_files(attachments: Iterable[CaseAttachment]) -> None:
    """Remove the files of attachments whose rows were rolled back."""
    for attachment in attachments:
        if attachment.file:
            attachment.file.storage.delete(attachment.file.name)
