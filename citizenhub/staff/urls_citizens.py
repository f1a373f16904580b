"""Staff routes for the citizens section (included by citizenhub/staff/urls.py, "staff")."""

from django.urls import path
from django.views.generic import RedirectView

from citizenhub.staff.views import citizens

urlpatterns: list = [
    # Residents are found through search; there is no list of everyone.
    path("", RedirectView.as_view(pattern_name="staff:search"), name="citizens"),
    path("<uuid:public_id>/", citizens.citizen_detail, name="citizen"),
]
