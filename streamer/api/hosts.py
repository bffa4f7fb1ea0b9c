"""Which names the API answers to, and which pages may change things through it: a
defence against DNS rebinding and cross-site requests from a browser on this machine.

A page on any web site can make the browser it runs in send requests to
``http://127.0.0.1:8003``. Two tricks would let it act on the API:

- **DNS rebinding**: the site's own name is made to resolve to 127.0.0.1, so the browser
  takes the API for part of the site and lets the page read and write it. The request
  then carries the site's name in its ``Host`` header: a name the daemon does not know is
  refused (403).
- **Cross-site writes**: a form on the site posts to the API directly. The browser then
  says where the page comes from in the ``Origin`` header: a POST, PUT, PATCH or DELETE
  whose ``Origin`` is not the API's own (nor a name of ``http.allowed_hosts``) is refused
  (403).

The names known: IP addresses (a rebinding attack always uses a name), ``localhost`` and
its subdomains, the listen address ``http.host``, this machine's host name (and its
``.local`` mDNS name), and the names
of ``http.allowed_hosts`` (``*.example.com`` also allows its subdomains; ``*`` allows
any). Clients that are not browsers (curl, a webhook consumer, the CLI) send no
``Origin`` and the name they were given in ``Host``, so they are not affected.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

#: Methods that only read: a cross-site page cannot read their answers anyway.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Listen addresses that are no name a client uses.
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A host name as a browser sends it (an international one in its xn-- form).
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host[:port]`` as (lower-case name without a final dot, port or ``None``); ``None``
    when it is not one (bad brackets, a port that is not a number, characters no name
    has)."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    name = (parts.hostname or "").removesuffix(".")
    if parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    if not (_NAME.fullmatch(name) or _address(name)):
        return None
    return name, port


def _address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """The names the API answers to, and the origins that may write through it."""

    def __init__(self, listen: str, allowed: Sequence[str]) -> None:
        self.any = "*" in allowed
        listed = [name.lower().removesuffix(".") for name in allowed if name != "*"]
        #: Names of ``http.allowed_hosts``: trusted as origins too (a proxy's public name).
        self.listed = {name for name in listed if not name.startswith("*.")}
        self.listed_suffixes = tuple(name[1:] for name in listed if name.startswith("*."))
        machine = socket.gethostname().lower()
        # The machine's name, and as mDNS announces it on the local network (gate.local).
        self.names = self.listed | {"localhost", machine, f"{machine}.local"}
        listen = listen.strip("[]").lower().removesuffix(".")
        if listen not in _WILDCARDS and not _address(listen):
            self.names.add(listen)

    def known(self, name: str) -> bool:
        """Whether ``name`` (lower case, no port) is one the API answers to."""
        return (
            self.any
            or _address(name)
            or name in self.names
            or name.endswith(".localhost")
            or name.endswith(self.listed_suffixes)
        )

    def host_refused(self, host: str | None) -> str | None:
        """Why a request with the ``Host`` header ``host`` is refused, or ``None``."""
        if host is None:
            return None  # HTTP/1.0 without one: no browser sends that
        parsed = split_host(host)
        if parsed is None:
            return "Host: not a host name"
        if not self.known(parsed[0]):
            return (
                f"Host: {parsed[0]} is not a name of this API; add it to http.allowed_hosts "
                "to reach the API by that name"
            )
        return None

    def origin_refused(self, method: str, origin: str | None, host: str | None) -> str | None:
        """Why a request with ``method`` from a page at ``origin`` (its ``Origin``
        header), sent to ``host``, is refused, or ``None``: a write is accepted from the
        API's own origin (the scheme's host and port are the ``Host`` it was sent to) or
        from a name of ``http.allowed_hosts``."""
        if method in SAFE_METHODS or origin is None:
            return None
        refused = f"Origin: {method} from another site is refused ({origin[:100]!r})"
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            return refused
        scheme, name = parts.scheme.lower(), (parts.hostname or "").removesuffix(".")
        if scheme not in _DEFAULT_PORTS or not name:
            return refused  # "null": a sandboxed frame, a file:// page
        if name in self.listed or name.endswith(self.listed_suffixes):
            return None
        target = split_host(host) if host is not None else None
        default = _DEFAULT_PORTS[scheme]
        if target is not None and target[0] == name and (target[1] or default) == (port or default):
            return None
        return refused
