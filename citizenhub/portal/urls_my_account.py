"""Portal routes: my_account (filled in by its owner)."""

urlpatterns: list = []
