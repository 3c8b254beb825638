"""state-service: leases, run records and bookmarks for Singer pipelines."""
