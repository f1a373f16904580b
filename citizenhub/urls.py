"""Top-level URL map; paths follow the contract in DESIGN.md."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from citizenhub import health

# The admin's own login would skip allauth: no rate limits, no second factor (PITFALLS.md).
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/me/", include("citizenhub.api.me")),
    path("api/v1/", include("citizenhub.api.urls")),
    path("api/v1/", include("channels.api.urls")),
    path("api/v1/", include("engagement.api_urls")),
    path("staff/inbox/", include("channels.staff.urls")),
    path("staff/campaigns/", include("engagement.staff_urls")),
    path("staff/", include("citizenhub.staff.urls")),
    path("", include("channels.urls")),
    path("my/messages/", include("channels.portal.urls")),
    path("my/preferences/", include("engagement.urls_portal")),
    path("", include("engagement.urls_public")),
    path("", include("citizenhub.portal.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
