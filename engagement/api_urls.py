"""The engagement app's REST API under /api/v1/ (topics, subscriptions, consents,
campaigns)."""

from rest_framework.routers import SimpleRouter

from engagement.api.views import (
    CampaignViewSet,
    ConsentViewSet,
    SubscriptionViewSet,
    TopicViewSet,
)

router = SimpleRouter(trailing_slash=True)
router.register("topics", TopicViewSet, basename="topic")
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("consents", ConsentViewSet, basename="consent")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = router.urls
