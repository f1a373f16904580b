"""URL routes of the REST API, version 1."""

from rest_framework.routers import DefaultRouter

from citizenhub.api.cases import CaseViewSet, ServiceViewSet, TeamViewSet
from citizenhub.api.views import CitizenViewSet

router = DefaultRouter(trailing_slash=True)
router.register("citizens", CitizenViewSet, basename="citizen")
router.register("cases", CaseViewSet, basename="case")
router.register("services", ServiceViewSet, basename="service")
router.register("teams", TeamViewSet, basename="team")

urlpatterns = router.urls
