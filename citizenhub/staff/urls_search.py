"""Staff routes for the search section (included by citizenhub/staff/urls.py, namespace "staff")."""

from django.urls import path

from citizenhub.staff.views import search

urlpatterns: list = [
    path("", search.search_page, name="search"),
]
