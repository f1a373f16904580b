"""Staff routes for duplicate suggestions and merges: /staff/duplicates/, namespace "staff"."""

from django.urls import path

from citizenhub.staff.views import duplicates

urlpatterns: list = [
    path("", duplicates.duplicate_list, name="duplicates"),
    path("compare/", duplicates.duplicate_compare, name="duplicate-compare"),
    path("merges/<int:merge_id>/", duplicates.merge_detail, name="merge-detail"),
    path("<int:candidate_id>/", duplicates.duplicate_review, name="duplicate-review"),
]
