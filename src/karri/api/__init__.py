"""User-facing services: HTTP endpoints, authentication, protocols, AWS error documents."""
