"""The engagement app's REST API for council systems: topics, subscriptions, the consent
ledger and campaigns, mounted under /api/v1/ by engagement.api_urls."""
