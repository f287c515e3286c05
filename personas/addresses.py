"""Which hosts a provider's base URL may name.

A provider's key and every prompt go to its base URL, and the server makes
the request: a base URL is a way to reach whatever the server can reach. So:
- cloud metadata services and link-local addresses (169.254.0.0/16,
  fe80::/10, which hold AWS's, GCP's and Azure's instance metadata and its
  credentials) are refused outright, as are multicast, unspecified and
  reserved addresses;
- loopback and private addresses (RFC 1918, fc00::/7, localhost) are where
  Ollama, vLLM and llama.cpp usually run, so they are allowed only for a
  provider the admin marks as local;
- IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) count as the IPv4 address.
Host names other than localhost are not resolved here (the answer could
change by the time of the request); see `Provider.is_local`.
"""

import ipaddress
from enum import StrEnum
from urllib.parse import urlsplit

# Host names of instance metadata services (GCP, AWS, Azure's well-known names) and AWS's IPv6 address.
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})


class HostKind(StrEnum):
    PUBLIC = "public"
    LOCAL = "local"
    FORBIDDEN = "forbidden"


def host_kind(url: str) -> HostKind:
    """Return whether `url`'s host is public, local (loopback or private) or forbidden (metadata, link-local)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in METADATA_HOSTS or host.endswith(".internal"):
        return HostKind.FORBIDDEN
    if host == "localhost" or host.endswith(".localhost"):
        return HostKind.LOCAL
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return HostKind.PUBLIC  # A name.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES or address.is_link_local or address.is_multicast or address.is_unspecified:
        return HostKind.FORBIDDEN
    if address.is_loopback or address.is_private:  # Before "reserved": ::1 is in IPv6's reserved ::/8.
        return HostKind.LOCAL
    return HostKind.FORBIDDEN if address.is_reserved else HostKind.PUBLIC
