"""The residents' portal, mounted at the site root. One module per section, so sections
can grow without touching each other. Names live in the "portal" namespace."""

from django.urls import include, path

app_name = "portal"

urlpatterns = [
    path("", include("citizenhub.portal.urls_public")),
    path("report/", include("citizenhub.portal.urls_report")),
    path("my/", include("citizenhub.portal.urls_my_account")),
    path("my/cases/", include("citizenhub.portal.urls_my_cases")),
    path("my/data/", include("citizenhub.portal.urls_my_data")),
]
