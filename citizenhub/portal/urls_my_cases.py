"""Portal routes: my cases (/my/cases/), the resident's own cases and their actions."""

from django.urls import path

from citizenhub.portal.views import my_cases

urlpatterns = [
    path("", my_cases.case_list, name="my-cases"),
    path("<str:reference>/", my_cases.case_detail, name="my-case"),
    path("<str:reference>/updates/", my_cases.case_add_update, name="my-case-update"),
    path("<str:reference>/reopen/", my_cases.case_reopen, name="my-case-reopen"),
]
