"""Links in the engagement app's messages, reached without signing in (namespace
"engagement"): the preference page, one-click unsubscribe, subscription confirmation."""

from django.urls import path

from engagement import views_public

app_name = "engagement"

urlpatterns = [
    path("preferences/<str:token>/", views_public.preferences, name="preferences"),
    path("unsubscribe/<str:token>/", views_public.unsubscribe, name="unsubscribe"),
    path("subscriptions/confirm/<str:token>/", views_public.confirm, name="confirm"),
]
