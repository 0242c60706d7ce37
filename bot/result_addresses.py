"""Which network addresses result downloads may reach.

A provider (or whoever controls a result URL or one of its redirects) decides where the bot
connects; the answer is posted into a chat. So only public addresses are reachable: the check
runs on the addresses a name resolves to (the connector's resolver), and on address literals,
for the first URL and every redirect."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = IPv4Address | IPv6Address


class AddressRefused(OSError):
    """A result URL's host is, or resolves only to, an address downloads may not reach."""


def address_allowed(address: IPAddress, *, allow_private: bool) -> bool:
    """Public addresses always; loopback, private and other non-global unicast ranges only with
    `allow_private` (self-hosted setups). Link-local (cloud metadata at 169.254.169.254),
    multicast, unspecified and reserved addresses never."""
    if isinstance(address, IPv6Address):
        # An IPv4 address inside an IPv6 one reaches the IPv4 host: judge that one.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            address = embedded
    if address.is_loopback:  # before `is_reserved`, which covers ::1
        return allow_private
    if (
        address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or (isinstance(address, IPv6Address) and address.is_site_local)
    ):
        return False
    return address.is_global or allow_private


def literal_allowed(host: str, *, allow_private: bool) -> bool:
    """False for an address literal downloads may not reach (aiohttp connects to literals
    without asking the resolver); names are left to the resolver."""
    try:
        address = ip_address(host.strip("[]"))
    except ValueError:
        return True
    return address_allowed(address, allow_private=allow_private)


class PublicResolver(AbstractResolver):
    """Resolves as usual, then keeps only the addresses downloads may reach."""

    def __init__(self, *, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [
            entry
            for entry in found
            if address_allowed(ip_address(entry["host"]), allow_private=self.allow_private)
        ]
        if not allowed:
            raise AddressRefused(f"{host} resolves only to refused addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def result_session(*, allow_private: bool, **options: Any) -> aiohttp.ClientSession:
    """The session for result downloads: every connection goes through `PublicResolver`.
    No proxy from the environment (a proxy would resolve names out of our sight)."""
    connector = aiohttp.TCPConnector(
        resolver=PublicResolver(allow_private=allow_private), limit=100, ttl_dns_cache=60
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False, **options)
