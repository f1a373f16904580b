"""Staff dashboard pages, one module per section."""
