"""streamer: real-time ANPR stream processor.

Reads camera streams or recorded video, detects and tracks number plates, reads each
vehicle's plate once, checks it for outstanding dues and delivers one event per vehicle.
"""

from __future__ import annotations

__version__ = "0.1.0"
