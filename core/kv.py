"""Redis clients shared inside one process (one connection pool per URL).

Short socket timeouts: the callers (rate limits, the answer spool and its context cache) are safety nets on the
request path, and a Redis that does not answer must cost a request about a second, not a minute.
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def redis_client(url: str, *, timeout_s: float = 1.0) -> Any:
    with _lock:
        client = _clients.get(url)
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            _clients[url] = client
        return client
