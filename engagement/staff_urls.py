"""Staff pages of the engagement app, mounted at /staff/campaigns/ (namespace "campaigns")."""

app_name = "campaigns"

urlpatterns: list = []
