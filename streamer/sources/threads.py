"""Reading a source in its own thread and handing its frames to the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

from streamer.sources.frame import Frame, Source

_DONE = object()


async def read_in_thread(
    source: Source,
    stop: asyncio.Event | None = None,
    maxsize: int = 8,
    on_drop: Callable[[], None] | None = None,
) -> AsyncIterator[Frame]:
    """Iterate ``source.frames()`` in a dedicated thread, without blocking the event loop.

    For a file, the queue holds at most ``maxsize`` frames and the thread waits when it
    is full, so no frame is lost. For a live source the queue holds one frame: a new frame
    replaces an unread one, and ``on_drop`` is called for each replaced frame. An exception
    in the thread is re-raised here. Setting ``stop`` (or leaving the ``async for``) ends
    the iteration without waiting for the next frame.
    """
    loop = asyncio.get_running_loop()
    # Live: unbounded, but drained before each new frame, so it holds at most one frame
    # (plus the end marker, which must never be dropped).
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=0 if source.live else maxsize)
    closed = threading.Event()

    def offer_latest(frame: object) -> None:  # runs on the loop
        while not queue.empty():
            queue.get_nowait()
            if on_drop is not None:
                on_drop()
        queue.put_nowait(frame)

    def put(item: object) -> None:
        if closed.is_set():
            return
        if source.live:
            callback = offer_latest if isinstance(item, Frame) else queue.put_nowait
            try:
                loop.call_soon_threadsafe(callback, item)
            except RuntimeError:  # the loop closed while this thread was reading
                closed.set()
            return
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not closed.is_set():
            try:
                future.result(timeout=0.2)
                return
            except TimeoutError:
                continue
        future.cancel()

    def produce() -> None:
        try:
            for frame in source.frames():
                if closed.is_set():
                    return
                put(frame)
            put(_DONE)
        except Exception as error:  # handed to the consumer, which reports it
            put(error)

    thread = threading.Thread(target=produce, name=f"source-{source.camera}", daemon=True)
    thread.start()
    stopping = asyncio.ensure_future((stop or asyncio.Event()).wait())
    try:
        while True:
            getting = asyncio.ensure_future(queue.get())
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                return
            item = getting.result()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, Frame)
            yield item
    finally:
        stopping.cancel()
        closed.set()
        source.close()
        while not queue.empty():
            queue.get_nowait()
        # The thread may be blocked in OpenCV for up to a read timeout; it is a daemon
        # thread and releases its capture when that returns, so do not wait for it long.
        await asyncio.to_thread(thread.join, 1.0)
