"""Portal routes of the channels app, mounted at /my/messages/ (namespace "my-messages")."""

from django.urls import path

from channels.portal import views

app_name = "my-messages"

urlpatterns = [
    path("", views.message_list, name="list"),
    path("<int:thread_id>/", views.message_thread, name="thread"),
]
