"""The events log guarded by the outbox (:class:`OutboxSink`): each event committed to the
outbox, then written to the events log, so nothing logged can miss its webhooks or the
broker after a crash; and neither stops the other when its disk fails. At the next start,
what a crash or an outage left behind is caught up (:meth:`OutboxSink.recover`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.delivery.jsonlines import JsonLinesSink, append_line, event_of, key_of, records, tail
from streamer.delivery.outbox import Outbox, OutboxError
from streamer.events import Event, PlateEvent
from streamer.retry import Outage

logger = logging.getLogger(__name__)

#: Called, from the thread that committed an event, with the targets it was queued for.
WakeCallback = Callable[[Sequence[str]], None]

#: Bytes at the end of the events log searched for events a crash left unmarked.
LOG_TAIL_BYTES = 1 << 20
#: Events kept in memory while neither the events log nor the outbox can be written.
MEMORY_MAX = 1000
#: Seconds between two attempts at what waits, when no new event comes to try again.
RETRY_S = 2.0
#: Beside the events log: the events the outbox could not commit yet (``<log>.held``).
HOLD_SUFFIX = ".held"


@dataclass
class _Waiting:
    """An event not yet both committed to the outbox and written to the events log."""

    event: Event
    committed: bool = False
    logged: bool = False
    #: Kept where it is safe until it is both: the outbox, or the hold file.
    settled: bool = False


class OutboxSink:
    """The events log guarded by the outbox: commit each event, log it, wake the senders.

    An event is committed to the outbox before it is logged, so nothing logged can miss
    its webhooks or the broker after a crash; once logged, it is marked so. A crash
    between the two leaves it unmarked, and :meth:`recover` logs it on the next start.

    Neither failing stops the other, and each outage is one line when it starts and one
    when it ends:

    - the outbox cannot commit (a full disk, a damaged file): the event is logged all the
      same, and kept in the hold file beside the events log (``events.jsonl.held``, at
      most ``outbox.max_pending`` events) until the outbox answers; then it is committed
      and its deliveries go out. A restart in between commits them at its start; one
      the hold file could not take either (the same full disk: the log's last page may
      hold a line when no file can grow) is committed from the log then.
    - the events log cannot be written: the event is committed (its deliveries go on) and
      left unmarked; the log is caught up from the outbox once a line can be written again.
    - neither: the event waits in memory (at most :data:`MEMORY_MAX`).

    What waits is tried again with each new event and every :data:`RETRY_S` seconds
    (:meth:`run`).
    """

    def __init__(
        self, outbox: Outbox, log: JsonLinesSink, wake: WakeCallback | None = None
    ) -> None:
        self.outbox = outbox
        self.log = log
        self.wake = wake
        self.hold = log.path.with_name(log.path.name + HOLD_SUFFIX)
        self.hold_max = outbox.config.max_pending
        #: Events kept nowhere: neither the log nor the outbox could take them in time.
        self.lost = 0
        #: Logged events whose deliveries were not kept: the hold file was full.
        self.unheld = 0
        self._lock = threading.Lock()
        self._memory: deque[_Waiting] = deque()
        self._outbox_outage = Outage(logger)
        self._log_outage = Outage(logger)
        # What this round found: True (it answered), False (it failed), None (not tried).
        self._outbox_ok: bool | None = None
        self._log_ok: bool | None = None
        self._held = self._held_done = 0  # lines in the hold file; committed since
        self._log_behind = False  # committed events wait for their log line
        self._caught_up = {"outbox": 0, "log": 0}

    def send(self, event: Event) -> None:
        """Commit, log and mark ``event`` (blocking, in the pipeline's worker thread)."""
        with self._lock:
            self._memory.append(_Waiting(event))
            self._catch_up()

    def recover(self) -> int:
        """At start: commit what the hold file kept, and what the log has but the outbox
        never committed; log the events a crash (or an outage of the log) committed but
        kept out of the log; returns how many were logged.
        """
        with self._lock:
            self._outbox_ok = self._log_ok = None
            self._held = sum(1 for _ in _read(self.hold))
            self._log_behind = True
            self._commit_held()
            held, self._caught_up["outbox"] = self._caught_up["outbox"], 0
            self._commit_logged()
            written = self._log_unlogged()
            logged, self._caught_up = self._caught_up["outbox"], {"outbox": 0, "log": 0}
        if held:
            logger.warning("outbox: committed %d event(s) that waited in %s", held, self.hold)
        if logged:
            logger.warning(
                "outbox: committed %d event(s) of the events log that a crash kept out of it "
                "(the disk was full); their deliveries go out now",
                logged,
            )
        if written:
            logger.warning("events log: added %d event(s) that a crash kept out of it", written)
        return written

    @property
    def waiting(self) -> bool:
        """Whether events wait for the outbox or the events log."""
        return bool(self._memory) or self._held > self._held_done or self._log_behind

    async def run(self) -> None:
        """Try again what waits every :data:`RETRY_S` seconds, until cancelled."""
        while True:
            await asyncio.sleep(RETRY_S)
            if self.waiting:
                await asyncio.to_thread(self.catch_up)

    def catch_up(self) -> None:
        """Commit and log what waits, as far as the outbox and the log let it."""
        with self._lock:
            self._catch_up()

    def settle(self) -> None:
        """At shutdown: try once more, and say what still waits and where."""
        self.catch_up()
        held = self._held - self._held_done
        if held:
            logger.warning(
                "%d event(s) wait in %s for the outbox; they are committed at the next start",
                held,
                self.hold,
            )
        if self.unheld:
            logger.error(
                "%d logged event(s) were not delivered: the outbox could not commit them and "
                "the hold file was full",
                self.unheld,
            )
        logged = sum(item.logged for item in self._memory)
        if logged:
            logger.error(
                "%d event(s) are in the events log, but neither the outbox nor %s could "
                "keep their deliveries: not delivered",
                logged,
                self.hold,
            )
        if lost := len(self._memory) - logged + self.lost:
            logger.error(
                "%d event(s) could be written neither to the events log nor to the outbox: lost",
                lost,
            )

    def _catch_up(self) -> None:
        self._outbox_ok = self._log_ok = None
        if self._held > self._held_done:
            self._commit_held()
        if self._log_behind:
            self._log_unlogged()
        for item in self._memory:
            self._settle(item)
        self._memory = deque(item for item in self._memory if not item.settled)
        while len(self._memory) > MEMORY_MAX:
            self._memory.popleft()
            self.lost += 1
            if self.lost == 1:
                logger.error(
                    "events log and outbox: more than %d events could be written to neither: "
                    "the oldest are lost",
                    MEMORY_MAX,
                )
        self._outages_ended()

    def _settle(self, item: _Waiting) -> None:
        """Commit and log ``item`` as far as possible; once committed (and not logged) the
        outbox keeps it, once logged (and not committed) the hold file does."""
        if not item.committed and self._outbox_ok is not False:
            item.committed = self._commit(item)
        if not item.logged and self._log_ok is not False:
            item.logged = self._write(item.event)
            if item.logged and item.committed:
                with contextlib.suppress(OutboxError):  # the next start finds it logged
                    self.outbox.logged([item.event.key])
        if item.committed:
            item.settled = True
            self._log_behind = self._log_behind or not item.logged
        elif item.logged:
            item.settled = self._keep(item.event)

    def _commit(self, item: _Waiting) -> bool:
        try:
            targets = self.outbox.add(item.event, item.logged)
        except OutboxError as error:
            self._outbox_ok = False
            self._outbox_outage.failed(
                "outbox: events not committed, deliveries paused: %s; every event is still "
                "written to the events log, and waits in %s until the outbox answers",
                error,
                self.hold,
            )
            return False
        self._outbox_ok = True
        if targets is None:  # queued (and logged) before: a file read again
            item.logged = True
        elif targets and self.wake is not None:
            self.wake(targets)  # delivery need not wait for the log
        return True

    def _write(self, event: Event | dict[str, Any]) -> bool:
        try:
            if isinstance(event, dict):
                self.log.write(event)
            else:
                self.log.send(event)
        except OSError as error:
            self._log_ok = False
            self._log_outage.failed(
                "events log: %s not written (%s): events wait in the outbox, deliveries go "
                "on; the log is caught up once it can be written",
                self.log.path,
                error.strerror or error,
            )
            return False
        self._log_ok = True
        return True

    def _keep(self, event: Event) -> bool:
        """Keep a logged event the outbox could not commit in the hold file; ``False``
        when that cannot be written either (it then waits in memory)."""
        if self._held - self._held_done >= self.hold_max:
            self.unheld += 1
            if self.unheld == 1:
                logger.error(
                    "outbox: %d events wait for it already (outbox.max_pending): the "
                    "deliveries of newer ones are not kept (the events log has them)",
                    self.hold_max,
                )
            return True
        try:
            append_line(self.hold, event.to_json())
        except OSError:
            return False
        self._held += 1
        return True

    def _commit_held(self) -> None:
        """Commit the events the hold file kept, oldest first; the file goes once all are."""
        done = 0
        for record in _read(self.hold):
            done += 1
            if done <= self._held_done:
                continue
            try:
                event = event_of(record)
            except (KeyError, TypeError, ValueError) as error:
                logger.error(
                    "%s: event %s cannot be read back (%r)", self.hold, key_of(record), error
                )
            else:
                if not self._commit(_Waiting(event, logged=True)):
                    return
                self._caught_up["outbox"] += 1
            self._held_done = done
        with contextlib.suppress(OSError):
            self.hold.unlink(missing_ok=True)
        self._held = self._held_done = 0

    def _commit_logged(self) -> None:
        """Commit the events at the end of the log that the outbox never had: logged while
        it could not commit and the hold file could not be written either, then a crash.
        Only those recent enough that retention (``keep_delivered_s``) cannot have purged
        them: an older one missing was delivered; none when the outbox is new (moved aside
        as damaged: what it had is not known). Those the outbox cannot commit yet wait
        with the other events."""
        if self.outbox.fresh:
            return
        since = time.time() - self.outbox.config.keep_delivered_s
        found: dict[str, Event] = {}
        for record in records(tail(self.log.path, LOG_TAIL_BYTES)):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                event = event_of(record)
                moment = event.last_seen if isinstance(event, PlateEvent) else event.at
                if moment.timestamp() > since:
                    found[event.key] = event
        try:
            unknown = self.outbox.unknown(list(found))
        except OutboxError:
            return  # the outage is told when the next event cannot be committed
        for position, key in enumerate(unknown):
            if not self._commit(_Waiting(found[key], logged=True)):
                # The disk is still full: they wait with the others (the hold file, or
                # memory) and are committed once it has room.
                self._memory.extend(_Waiting(found[k], logged=True) for k in unknown[position:])
                return
            self._caught_up["outbox"] += 1

    def _log_unlogged(self) -> int:
        """Write to the log the events the outbox committed but the log does not have;
        returns how many."""
        try:
            unlogged = self.outbox.unlogged()
        except OutboxError:
            return 0
        if not unlogged:
            self._log_behind = False
            return 0
        # A crash between writing a line and marking it leaves it unmarked but logged.
        logged = {key_of(record) for record in records(tail(self.log.path, LOG_TAIL_BYTES))}
        done: list[str] = []
        added = 0
        for key, record in unlogged:
            # Compared as the line has it (a damaged key column must not log it twice);
            # an unreadable payload cannot be logged.
            if record and key_of(record) not in logged:
                logged.add(key_of(record))
                if not self._write(record):
                    break
                added += 1
            done.append(key)
        with contextlib.suppress(OutboxError):
            self.outbox.logged(done)
        self._log_behind = len(done) < len(unlogged)
        self._caught_up["log"] += added
        return added

    def _outages_ended(self) -> None:
        if self._outbox_ok and self._held <= self._held_done and not self._memory:
            self._outbox_outage.ended(
                "outbox: commits again; %d event(s) that waited were committed, deliveries resume",
                self._caught_up["outbox"],
            )
            self._caught_up["outbox"] = 0
        if self._log_ok and not self._log_behind and all(i.logged for i in self._memory):
            self._log_outage.ended(
                "events log: written again; %d event(s) that waited were added",
                self._caught_up["log"],
            )
            self._caught_up["log"] = 0


def _read(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a hold file, read as they are taken; none if there is none."""
    try:
        file = path.open("rb")
    except OSError:
        return
    with file:
        for line in file:  # lines end at b"\n" only
            yield from records(line)
