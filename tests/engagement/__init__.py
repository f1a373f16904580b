"""Tests of the engagement app: the consent ledger and the preference centre."""
