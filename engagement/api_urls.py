"""The engagement app's REST API under /api/v1/ (topics, subscriptions, consents,
campaigns)."""

urlpatterns: list = []
