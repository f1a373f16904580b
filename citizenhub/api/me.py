"""The resident's own API (/api/v1/me/): filled in by its owner."""

urlpatterns: list = []
