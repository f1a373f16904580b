"""Portal routes of the engagement app, mounted at /my/preferences/ (namespace
"my-preferences")."""

from django.urls import path

from engagement import views_portal

app_name = "my-preferences"

urlpatterns: list = [
    path("", views_portal.preferences, name="index"),
]
