"""Portal routes: my_cases (filled in by its owner)."""

urlpatterns: list = []
