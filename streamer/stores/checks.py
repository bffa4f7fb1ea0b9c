"""What is known of a plate: its dues and the lists it is on, looked up together for every
plate event and every photo, so that both handle a database outage the same way."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from streamer.events import NO_LISTS, DuesResult, ListMatch
from streamer.retry import Outage
from streamer.stores.dues import Dues
from streamer.stores.lists import Lists, NoLists
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checked:
    """A plate's dues and lists, as an event or a ``/process`` answer carries them."""

    dues_result: DuesResult
    lists: ListMatch


class PlateChecks:
    """Looks up a plate's dues and lists. When the database cannot be reached (a
    cluster's, during an outage), the answer still comes: not found, with a message that
    says the dues were not checked; one line says when lookups fail, and one when they
    work again.

    Example:
        >>> checks = PlateChecks(SqlDues(Path("/tmp/dues.sqlite")))
        >>> checks.check("KA01AB1234").dues_result.found
        False
    """

    def __init__(self, dues: Dues, lists: Lists | None = None) -> None:
        self.dues = dues
        self.lists = lists or NoLists()
        self._outage = Outage(logger)

    def check(self, plate: str) -> Checked:
        """The dues and lists of ``plate`` (safe from any thread)."""
        try:
            checked = Checked(self.dues.lookup(plate), self.lists.lookup(plate))
        except StoreError as error:
            self._outage.failed(
                "%s: dues and lists not checked (until the database answers): %s", plate, error
            )
            return Checked(DuesResult(False, False, 0.0, f"Dues not checked: {error}"), NO_LISTS)
        self._outage.ended("dues and lists: checked again")
        return checked
