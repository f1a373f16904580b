"""The channels app's part of the residents' portal: my messages, phone verification."""
