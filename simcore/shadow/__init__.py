"""Device shadows: the document engine (AWS semantics, SQLite) and GGShadowService; no transport."""
