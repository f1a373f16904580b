"""URL routes of the REST API, version 1."""

from rest_framework.routers import DefaultRouter

from citizenhub.api.views import CitizenViewSet

router = DefaultRouter(trailing_slash=True)
router.register("citizens", CitizenViewSet, basename="citizen")

urlpatterns = router.urls
