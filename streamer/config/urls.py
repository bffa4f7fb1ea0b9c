"""The HTTP URLs and headers a config gives for webhooks and rule actions, checked when
the config is loaded: one that cannot work (port 99999, ``http://[::1``, a line break in
a header) would otherwise be retried, or fail at the gate, forever."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import yarl

#: A DNS label (underscores too: container and service names use them).
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
#: A header name: an HTTP token (RFC 9110).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Control characters; a header value may hold tabs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
IPV6 = "an IPv6 host must be a valid address in closed brackets, e.g. http://[::1]:8080/"
#: A ``{placeholder}`` of a rule's URL.
_PLACEHOLDER = re.compile(r"\{[a-z_]*\}")


def http_url(url: str) -> str:
    """``url`` when it is an ``http://`` or ``https://`` URL that a request can be sent
    to: a host that is a valid name or address, a port from 1 to 65535, no control
    characters. Placeholders (``{plate_number}``) count as a word.

    Raises:
        ValueError: saying what is wrong (without the URL, which may hold a password).
    """
    if _CONTROL.search(url):
        raise ValueError("must not hold control characters (a line break?)")
    concrete = _PLACEHOLDER.sub("x", url)
    try:
        parts = urlsplit(concrete)
    except ValueError:
        raise ValueError(IPV6) from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise ValueError("must start with http:// or https://")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    _host(parts.hostname or "", parts.netloc.rpartition("@")[2].startswith("["))
    try:  # as the HTTP client reads it
        yarl.URL(concrete)
    except (ValueError, UnicodeError) as error:
        raise ValueError(
            f"not a URL the HTTP client can send to ({type(error).__name__})"
        ) from None
    return url


def _host(host: str, bracketed: bool) -> None:
    if not host:
        raise ValueError("needs a host: http://host[:port]/path")
    if bracketed:
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise ValueError(IPV6) from None
        return
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host} is not an IPv4 address") from None
        return
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = ""
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host[:80]!r} is not a valid host name")


def http_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` when each name is an HTTP token and no value holds a line break or
    another control character (which would end the header and start another).

    Raises:
        ValueError: naming the header.
    """
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"header {name[:60]!r}: a name is letters, digits and !#$%&'*+.^_`|~- only"
            )
        if _CONTROL.search(value.replace("\t", " ")):
            raise ValueError(
                f"header {name}: the value must not hold a line break or control character"
            )
    return headers
