"""The aiohttp edge: the only code that touches sockets and Redis."""
