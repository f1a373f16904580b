"""Omnichannel in and out: channel accounts, inbound messages, threads, replies."""
