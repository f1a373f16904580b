"""Portal routes: my_data (filled in by its owner)."""

urlpatterns: list = []
