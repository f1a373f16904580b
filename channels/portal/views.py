"""My messages: the resident's conversations with the council across channels, read-only.

Replying happens where the resident wrote (their e-mail, their phone), or on the case page
("add information"); a reply box here would have to enter the ingest pipeline as a new
web-channel message, which the portal does not do yet.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from channels.portal import selectors
from citizenhub.portal.access import resident_required


@require_GET
@resident_required
def message_list(request: HttpRequest) -> HttpResponse:
    case_reference = request.GET.get("case", "").strip()[: selectors.REFERENCE_MAX_CHARS]
    threads = selectors.resident_threads(request.citizen, case_reference=case_reference)
    page = Paginator(threads, selectors.THREADS_PAGE_SIZE).get_page(request.GET.get("page"))

    def page_url(number: int) -> str:
        return "?" + urlencode(
            {**({"case": case_reference} if case_reference else {}), "page": number}
        )

    return render(
        request,
        "portal/messages/list.html",
        {
            "page": page,
            "rows": [(thread, selectors.channel_in_words(thread.channel)) for thread in page],
            "case_reference": case_reference,
            "previous_url": page_url(page.previous_page_number()) if page.has_previous() else "",
            "next_url": page_url(page.next_page_number()) if page.has_next() else "",
        },
    )


@resident_required
def message_thread(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = selectors.resident_thread(request.citizen, thread_id)
    if thread is None:
        raise Http404(_("No conversation of yours has that number."))
    # Checked after the lookup: another resident's conversation is "not found" whatever
    # the method, never "method not allowed".
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return render(
        request,
        "portal/messages/thread.html",
        {
            "thread": thread,
            "channel": selectors.channel_in_words(thread.channel),
            "items": selectors.resident_thread_messages(thread),
        },
    )
