"""Portal routes: report a problem, and its confirmation."""

from django.urls import path

from citizenhub.portal.views import report

urlpatterns = [
    path("", report.report, name="report"),
    path("done/", report.report_done, name="report-done"),
]
