"""Serving the photos attached to cases: only to the resident whose case it is, and to staff
who may read the case. Everyone else gets the same 404 as for an id that does not exist."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import FileResponse, Http404, HttpRequest
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_safe

from citizenhub.case_selectors import can_see_case_content
from citizenhub.models import AuditEvent, CaseAttachment
from citizenhub.portal.access import citizen_for_user
from citizenhub.services import audit_record
from citizenhub.services.attachments import ACCEPTED_IMAGE_TYPES, download_name
from citizenhub.staff.access import is_staff_member
from citizenhub.staff.middleware import has_totp

logger = logging.getLogger(__name__)

STAFF_VIEW_PERMISSION = "citizenhub.view_servicecase"


def _is_owner(user: AbstractBaseUser | AnonymousUser, attachment: CaseAttachment) -> bool:
    citizen = citizen_for_user(user)
    return citizen is not None and attachment.case.citizen_id == citizen.pk


def _staff_may_read(user: AbstractBaseUser | AnonymousUser, attachment: CaseAttachment) -> bool:
    if not is_staff_member(user) or not user.has_perm(STAFF_VIEW_PERMISSION):
        return False
    # The staff pages refuse an officer without an authenticator (StaffMfaRequiredMiddleware
    # guards /staff/ only): the files of their cases must not be a way round it.
    if settings.STAFF_MFA_REQUIRED and not has_totp(user):
        return False
    return can_see_case_content(user, attachment.case)


@require_safe
def attachment_file(request: HttpRequest, public_id: uuid.UUID) -> FileResponse:
    attachment = (
        CaseAttachment.objects.select_related("case__service")
        .filter(public_id=public_id, case__anonymised_at__isnull=True)
        .first()
    )
    if attachment is None:
        raise Http404
    user = request.user
    if _is_owner(user, attachment):
        pass
    elif _staff_may_read(user, attachment):
        audit_record(
            action=AuditEvent.Action.VIEW,
            target=attachment,
            actor=user,
            citizen=attachment.case.citizen,
            details={"case": attachment.case.reference},
        )
    else:
        raise Http404
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        logger.error("Attachment %s has no file at %s", attachment.public_id, attachment.file.name)
        raise Http404 from None
    # Only the accepted image types are ever stored; anything else would be served as bytes.
    content_type = (
        attachment.content_type
        if attachment.content_type in ACCEPTED_IMAGE_TYPES
        else "application/octet-stream"
    )
    response = FileResponse(handle, content_type=content_type, filename=download_name(attachment))
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser were fooled into rendering it as a page, it could run nothing.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    patch_cache_control(response, private=True)
    patch_vary_headers(response, ["Cookie"])
    return response
