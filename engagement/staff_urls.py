"""Staff pages of the engagement app, mounted at /staff/campaigns/ (namespace "campaigns")."""

from django.urls import path

from engagement import staff_views

app_name = "campaigns"

urlpatterns = [
    path("", staff_views.campaign_list, name="list"),
    path("new/", staff_views.campaign_new, name="new"),
    path("<int:pk>/", staff_views.campaign_detail, name="detail"),
    path("<int:pk>/edit/", staff_views.campaign_edit, name="edit"),
    path("<int:pk>/preview/", staff_views.campaign_preview, name="preview"),
    path("<int:pk>/test-send/", staff_views.campaign_test_send, name="test-send"),
    path("<int:pk>/submit/", staff_views.campaign_submit, name="submit"),
    path("<int:pk>/review/", staff_views.campaign_review, name="review"),
    path("<int:pk>/schedule/", staff_views.campaign_schedule, name="schedule"),
    path("<int:pk>/start/", staff_views.campaign_start, name="start"),
    path("<int:pk>/cancel/", staff_views.campaign_cancel, name="cancel"),
    path("<int:pk>/analytics/", staff_views.campaign_analytics, name="analytics"),
]
