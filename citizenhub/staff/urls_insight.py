"""Staff routes for the Insight page (included by citizenhub/staff/urls.py, namespace "staff")."""

from django.urls import path

from citizenhub.staff.views import insight

urlpatterns: list = [
    path("", insight.insight_page, name="insight"),
    path("<slug:report>.csv", insight.insight_csv, name="insight-csv"),
]
