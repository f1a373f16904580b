"""Service functions of the channels app: ingest, threading, routing, polling, sending."""
