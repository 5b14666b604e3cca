"""Token buckets: how much a peer, or an IP address, may still ask of us; refilled over time."""

from __future__ import annotations

import ipaddress


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take(now, cost)` spends them if there are enough."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

    def give_back(self, tokens: float = 1.0) -> None:
        """Return `tokens` (up to the burst); negative takes them away, even below zero."""
        self._tokens = min(self.burst, self._tokens + tokens)


def host_of(address: str | None) -> str:
    """The host of a "host:port" link address ("?" when unknown)."""
    return (address or "?").rsplit(":", 1)[0]


def address_group(host: str) -> str:
    """Whose budget a connection from `host` draws on: the IPv4 address, or the /64 of an
    IPv6 one (one machine gets a whole /64, so single IPv6 addresses cost nothing)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


class AddressBudgets:
    """One TokenBucket per address group, at most `most` of them (the longest unused go first)."""

    def __init__(self, rate: float, burst: float, most: int) -> None:
        self.rate = rate
        self.burst = burst
        self.most = most
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, host: str, now: float) -> TokenBucket:
        group = address_group(host)
        bucket = self._buckets.pop(group, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
        self._buckets[group] = bucket  # the most recently used last
        while len(self._buckets) > self.most:
            del self._buckets[next(iter(self._buckets))]
        return bucket

    def take(self, host: str, now: float) -> bool:
        """Spend one from `host`'s budget, or False: it has none left now."""
        return self._bucket(host, now).take(now)

    def give_back(self, host: str, now: float, tokens: float = 1.0) -> None:
        self._bucket(host, now).give_back(tokens)

    def clear(self) -> None:
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)
