"""Views of the residents' portal, one module per section."""
