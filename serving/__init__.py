"""Model serving: request schema, API keys, verified model loading, prediction log, and the BentoML service."""
