"""The base of every config section, the error a bad config raises, and the masking of
the passwords config values carry in URLs."""

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


def _mask_one(url: str) -> str:
    """``url`` with the password of its user information replaced by ``***``.

    The user information ends at the URL's *last* ``@``: a password may hold ``@``, ``/``
    or ``:`` unescaped (cameras accept that), which a URL parser would read as the host or
    the path. Where an ``@`` in the path makes that guess wrong, more is masked, not less.
    """
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not at or not colon:
        return url
    return f"{scheme}://{user}:***@{host}"


def mask_url(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``.

    Example:
        >>> mask_url("rtsp://admin:p@ss/w0rd@10.0.0.7:554/stream1")
        'rtsp://admin:***@10.0.0.7:554/stream1'
    """
    if "://" not in text:
        return text
    return _URL.sub(lambda match: _mask_one(match.group()), text)
