"""Portal routes: report a problem, its confirmation, and the link to follow an anonymous
report by e-mail."""

from django.urls import path

from citizenhub.portal.views import report, report_confirm

urlpatterns = [
    path("", report.report, name="report"),
    path("done/", report.report_done, name="report-done"),
    path("confirm/<str:token>/", report_confirm.report_confirm, name="report-confirm"),
]
