"""Portal routes: my data (/my/data/): the export as JSON and as a page, who viewed my
record, and subject access and erasure requests."""

from django.urls import path

from citizenhub.portal.views import my_data

urlpatterns: list = [
    path("", my_data.my_data, name="my-data"),
    path("export.json", my_data.export_json, name="my-data-export-json"),
    path("export/", my_data.export_page, name="my-data-export"),
    path("views/", my_data.record_views, name="my-data-views"),
    path("requests/<slug:kind>/", my_data.data_request, name="my-data-request"),
    path(
        "requests/<slug:kind>/<str:reference>/",
        my_data.data_request_received,
        name="my-data-request-received",
    ),
]
