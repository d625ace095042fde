"""API gateway sidecar: routing, upstream auth, Redis quotas, one error schema."""

__version__ = "0.1.0"
