"""Unified inbox routes, mounted at /staff/inbox/ (namespace "inbox")."""

from django.urls import path

from channels.staff import views

app_name = "inbox"

urlpatterns: list = [
    path("", views.inbox_list, name="list"),
    path("rows/", views.inbox_rows, name="rows"),
    path("<int:thread_id>/", views.thread_detail, name="thread"),
    path("<int:thread_id>/reply/", views.thread_reply_view, name="reply"),
    path("<int:thread_id>/assign/", views.thread_assign_view, name="assign"),
    path("<int:thread_id>/status/", views.thread_status_view, name="status"),
    path("<int:thread_id>/case/open/", views.thread_open_case_view, name="open_case"),
    path("<int:thread_id>/case/link/", views.thread_link_case_view, name="link_case"),
]
