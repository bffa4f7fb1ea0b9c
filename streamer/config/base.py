"""The base of every config section, and the error a bad config raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """An invalid configuration; ``str()`` gives one ``key.path: reason (got value)`` per line."""


class Section(BaseModel):
    """A config section: unknown keys are rejected, values cannot be changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
