"""Portal routes of the channels app, mounted at /my/messages/ (namespace "my-messages")."""

app_name = "my-messages"

urlpatterns: list = []
