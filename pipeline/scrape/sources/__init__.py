"""Where raw images come from: one module per ``scrape.source``, named in ``registry.SOURCES``."""
