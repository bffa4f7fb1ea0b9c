"""Something that keeps failing (a camera, a database, a delivery target): wait longer
before each new attempt (:func:`backoff`), and say so once, not at every attempt
(:class:`Outage`)."""

from __future__ import annotations

import logging
import random
import threading


def backoff(
    failures: int, initial_s: float, max_s: float, rng: random.Random, jitter: float = 0.2
) -> float:
    """The wait after ``failures`` failures in a row: doubling from ``initial_s`` up to
    ``max_s``, randomised by ``±jitter`` so that things that failed together (cameras,
    targets) do not retry together.

    Example:
        >>> round(backoff(3, 1.0, 30.0, random.Random(1), jitter=0.0), 1)
        4.0
    """
    doublings = float(2 ** min(64, max(0, failures - 1)))
    return min(max_s, initial_s * doublings) * rng.uniform(1 - jitter, 1 + jitter)


class Outage:
    """Whether something (a database, a target) keeps failing, so that an outage is logged
    in one line when it starts and one when it ends, not at every attempt. Safe from any
    thread.

    Example:
        >>> outage = Outage(logger)
        >>> outage.failed("cluster events: not written: %s", error)  # ERROR, once
        >>> outage.ended("cluster events: written again")            # INFO, if it failed
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._on = False
        self._lock = threading.Lock()

    def failed(self, message: str, *args: object) -> None:
        """Log ``message`` as an error when the outage starts (at debug level while it
        lasts)."""
        with self._lock:
            first, self._on = not self._on, True
        self.logger.log(logging.ERROR if first else logging.DEBUG, message, *args)

    def ended(self, message: str, *args: object) -> None:
        """Log ``message`` when an outage was on; it is over."""
        with self._lock:
            was, self._on = self._on, False
        if was:
            self.logger.info(message, *args)
