"""The base of every config section, the error a bad config raises, and the masking of
the secrets config values carry in URLs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class ConfigError(ValueError):
    """An invalid configuration; ``str()`` gives one ``key.path: reason (got value)`` per line."""


class Section(BaseModel):
    """A config section: unknown keys are rejected, values cannot be changed, and no path
    holds a NUL character (the operating system cannot open such a name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _no_nul_in_paths(cls, value: Any) -> Any:
        if isinstance(value, Path) and "\x00" in str(value):
            raise ValueError("must not contain a NUL character")
        return value


# The scheme's length is bounded, so that a long run of letters with no "://" after it
# costs linear time, not quadratic.
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{0,31}://\S+")
#: Path segments that look like secrets (see :func:`secret_like`).
_HEX = re.compile(r"[0-9A-Fa-f]{16,}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{20,}")
_TOKEN = re.compile(r"[A-Za-z0-9._~+=:%-]{32,}")
MASK = "***"


def secret_like(segment: str) -> bool:
    """Whether a URL's path segment looks like a secret rather than a name: a run of 16 or
    more hexadecimal digits mixing letters and digits (an API key); 20 or more letters,
    digits, ``-`` and ``_`` mixing upper case, lower case and digits (base64url, most
    webhook tokens); or any run of 32 or more letters, digits and ``. _ ~ + = : % -`` (a
    UUID, a JWT, a bot token). Words, numbers and camera paths (``Streaming``,
    ``h264Preview_01_main``, ``101``) do not.

    Example:
        >>> secret_like("Q3hM9vTzL0pWk2sR7yBn4dGc"), secret_like("h264Preview_01_main")
        (True, False)
    """
    digits = any(c.isdigit() for c in segment)
    if _HEX.fullmatch(segment) and digits and any(c.isalpha() for c in segment):
        return True
    mixed = any(c.isupper() for c in segment) and any(c.islower() for c in segment)
    return bool((_BASE64URL.fullmatch(segment) and digits and mixed) or _TOKEN.fullmatch(segment))


def _mask_location(location: str) -> str:
    """``host[:port]/path?query#fragment`` with every query value, the fragment and the
    path segments that look like secrets replaced by ``***``."""
    cut = min((at for at in (location.find(c) for c in "/?#") if at >= 0), default=len(location))
    authority, rest = location[:cut], location[cut:]
    rest, hash_, fragment = rest.partition("#")
    path, question, query = rest.partition("?")
    path = "/".join(MASK if secret_like(part) else part for part in path.split("/"))
    if question:
        items = []
        for item in query.split("&"):
            name, equals, value = item.partition("=")
            if equals:
                items.append(f"{name}={MASK}" if value else item)
            else:
                items.append(MASK if secret_like(item) else item)
        query = "&".join(items)
    fragment = MASK if fragment else fragment
    return f"{authority}{path}{question}{query}{hash_}{fragment}"


def _mask_one(url: str) -> str:
    """``url`` with the password of its user information, its query values, its fragment
    and the path segments that look like secrets replaced by ``***``.

    The user information ends at the URL's *last* ``@``: a password may hold ``@``, ``/``
    or ``:`` unescaped (cameras accept that), which a URL parser would read as the host or
    the path. Where an ``@`` in the path makes that guess wrong, more is masked, not less.
    """
    scheme, _, rest = url.partition("://")
    userinfo, at, location = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if at and colon:
        return f"{scheme}://{user}:{MASK}@{_mask_location(location)}"
    return f"{scheme}://{_mask_location(rest)}"


def mask_url(text: str) -> str:
    """Replace the secrets of every URL in ``text`` with ``***``: the password, every query
    value, the fragment, and the path segments that look like secrets (:func:`secret_like`).
    Masking twice changes nothing more.

    Example:
        >>> mask_url("rtsp://admin:p@ss/w0rd@10.0.0.7:554/stream1")
        'rtsp://admin:***@10.0.0.7:554/stream1'
        >>> mask_url("POST https://relay.lan/open?gate=1&key=abc failed")
        'POST https://relay.lan/open?gate=***&key=*** failed'
    """
    if "://" not in text:
        return text
    return _URL.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    # Quotes and brackets around a URL in a message (url='…') are not part of it.
    url = match.group()
    bare = url.rstrip("'\")]>,;")
    return _mask_one(bare) + url[len(bare) :]
