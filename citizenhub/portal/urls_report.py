"""Portal routes: report (filled in by its owner)."""

urlpatterns: list = []
