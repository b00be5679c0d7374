"""API keys → users. `API_KEYS` holds `key:user_id` pairs (comma separated) and/or `API_KEYS_FILE` one
pair a line; without any key the server is for local development (README). Browsers cannot set
headers on a WebSocket, so a key may also come as `?token=` or the `openai-insecure-api-key.<key>`
subprotocol."""
from __future__ import annotations

import hmac
import ipaddress
import re
import time
from collections import defaultdict, deque
from urllib.parse import urlsplit

from orchestrator.protocol import ID_PATTERN

KEY_SUBPROTOCOL = "openai-insecure-api-key."


class KeyRing:
    def __init__(self, pairs: str = "", file: str | None = None):
        text = pairs.replace(",", "\n")
        if file:
            with open(file, encoding="utf-8") as f:
                text += "\n" + f.read()
        self.users: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, user = line.rpartition(":")
            if not sep or len(key) < 16 or not re.match(ID_PATTERN, user):
                raise ValueError("API keys are `key:user_id` with a key of ≥ 16 characters and a user id of "
                                 "1–64 of [A-Za-z0-9_.-]")
            self.users[key] = user

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def user_for(self, key: str | None) -> str | None:
        """The user a key belongs to (constant-time comparison), or None."""
        if not key:
            return None
        found = None
        for known, user in self.users.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                found = user
        return found


def presented_key(headers, query_params, subprotocols: list[str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for protocol in subprotocols:
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL):]
    return query_params.get("token")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(keys: KeyRing, host: str) -> str | None:
    """Refuse (ValueError) to serve beyond this machine without keys; a warning line for local development."""
    if keys.enabled:
        return None
    if not is_loopback(host):
        raise ValueError(f"HOST={host} without API keys: anyone on the network could use the server. Set "
                         "API_KEYS (key:user_id pairs) or API_KEYS_FILE, or bind to 127.0.0.1")
    return "no API keys configured: development mode, loopback only; every client is user 'local' on /v1/realtime"


def origin_allowed(headers, allowed: str) -> bool:
    """Browsers send Origin: a socket from a page of another site is refused unless listed;
    clients that are not browsers send none."""
    origin = headers.get("origin")
    if not origin:
        return True
    listed = {o.strip().rstrip("/") for o in allowed.split(",") if o.strip()}
    return origin.rstrip("/") in listed or urlsplit(origin).netloc == headers.get("host", "")


class RateLimit:
    """At most `limit` events per `window_s` per key, over a sliding window; limit 0 switches it off."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        if not self.limit:
            return True
        now, events = time.monotonic(), self._events[key]
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True
