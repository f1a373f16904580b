"""Communications: topics, subscriptions, the consent ledger, campaigns, contact rules."""
