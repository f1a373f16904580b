"""API routes of the channels app, mounted under /api/v1/."""

from rest_framework.routers import SimpleRouter

from channels.api.contacts import LoggedContactViewSet
from channels.api.views import ThreadViewSet

router = SimpleRouter(trailing_slash=True)
router.register("threads", ThreadViewSet, basename="thread")
router.register("contacts", LoggedContactViewSet, basename="logged-contact")

urlpatterns = router.urls
