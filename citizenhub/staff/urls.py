"""Staff dashboard routes, mounted at /staff/ (the inbox is the channels app's, at /staff/inbox/).

Each section keeps its routes in its own module; all names live in the "staff" namespace.
"""

from django.urls import include, path

from citizenhub.staff.views import home

app_name = "staff"

urlpatterns: list = [
    path("", home.home, name="home"),
    path("cases/", include("citizenhub.staff.urls_cases")),
    path("cases/<str:reference>/erasure/", include("citizenhub.staff.views.erasure")),
    path("citizens/", include("citizenhub.staff.urls_citizens")),
    path("search/", include("citizenhub.staff.urls_search")),
    path("duplicates/", include("citizenhub.staff.urls_duplicates")),
    path("insight/", include("citizenhub.staff.urls_insight")),
]
