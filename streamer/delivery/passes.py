"""Passes over recorded files: which one a camera is on, kept in the outbox's file.

A recorded file's event ids are derived from the file (see
:meth:`streamer.reporter.TrackReporter.event_id`), so that the file read again after a
crash gives its vehicles the same ids and the outbox does not deliver them twice. A file
processed again on purpose, after a pass that reached its end, is a new pass: its number
goes into the ids, so its vehicles are new events and are delivered. A pass that did not
reach its end (a crash, a stop) is taken up again under its own number.
"""

from __future__ import annotations

import logging

from streamer.delivery.outbox_file import OutboxFile
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS file_passes (
    camera TEXT NOT NULL,
    identity TEXT NOT NULL,
    pass INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    PRIMARY KEY (camera, identity)
)
"""


class FilePasses:
    """The passes of each camera over each recorded file (by its content's identity), in
    the outbox's file beside the keys they concern; without a file (``None``), every pass
    is the first, as before passes were counted.

    Example:
        >>> passes = FilePasses(outbox.file)
        >>> passes.begin("gate", identity), passes.begin("gate", identity)  # a crash between
        (1, 1)
        >>> passes.finish("gate", identity)
        >>> passes.begin("gate", identity)
        2
    """

    def __init__(self, file: OutboxFile | None = None) -> None:
        self.file = file

    def begin(self, camera: str, identity: str) -> int:
        """The number of the pass ``camera`` starts over the file: the last one again if
        it did not reach the end, else the next (blocking). Where the outbox cannot be
        written, the first, as before (a warning: the outbox's own error says why)."""
        if self.file is None:
            return 1
        try:
            with self.file.connect() as connection:
                connection.execute(SCHEMA)
                row = connection.execute(
                    "SELECT pass, finished FROM file_passes WHERE camera = ? AND identity = ?",
                    (camera, identity),
                ).fetchone()
                number = 1 if row is None else int(row[0]) + int(row[1])
                connection.execute(
                    "INSERT INTO file_passes (camera, identity, pass, finished) "
                    "VALUES (?, ?, ?, 0) ON CONFLICT (camera, identity) "
                    "DO UPDATE SET pass = excluded.pass, finished = 0",
                    (camera, identity, number),
                )
        except StoreError as error:
            logger.warning("camera %s: pass over the file not counted: %s", camera, error)
            return 1
        return number

    def finish(self, camera: str, identity: str) -> None:
        """``camera``'s pass over the file reached its end, every vehicle of it reported:
        the next is a new pass (blocking)."""
        if self.file is None:
            return
        try:
            with self.file.connect() as connection:
                connection.execute(
                    "UPDATE file_passes SET finished = 1 WHERE camera = ? AND identity = ?",
                    (camera, identity),
                )
        except StoreError as error:
            logger.warning("camera %s: end of the pass over the file not kept: %s", camera, error)
