"""Pure logic: value types, the problem schema, path safety, headers, quotas, signing.

Nothing here imports aiohttp, redis, prometheus_client or structlog.
"""
