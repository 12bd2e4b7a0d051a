"""What may pass, the same for the ingest function and every plugin source: the chain of
the cluster mark, the size bound and the dedupe window (`chain`, over `dedupe`'s compact
window), then the rate limit's token bucket (`ratelimit`)."""
