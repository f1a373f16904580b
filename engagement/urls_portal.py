"""Portal routes of the engagement app, mounted at /my/preferences/ (namespace
"my-preferences")."""

app_name = "my-preferences"

urlpatterns: list = []
