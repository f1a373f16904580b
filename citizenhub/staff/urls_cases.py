"""Staff routes for the cases section (included by citizenhub/staff/urls.py, namespace "staff")."""

from django.urls import path

from citizenhub.staff.views import cases

urlpatterns: list = [
    path("", cases.case_queue, name="case-queue"),
    path("new/", cases.case_new, name="case-new"),
    path("<str:reference>/", cases.case_detail, name="case-detail"),
    path("<str:reference>/transition/", cases.case_transition_view, name="case-transition"),
    path("<str:reference>/assign/", cases.case_assign_view, name="case-assign"),
    path("<str:reference>/edit/", cases.case_edit_view, name="case-edit"),
    path("<str:reference>/notes/", cases.case_note_view, name="case-note"),
    path("<str:reference>/legal-hold/", cases.case_legal_hold_view, name="case-legal-hold"),
]
