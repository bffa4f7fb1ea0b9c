"""Not the daemon: the demo recording and the accuracy evaluation (``streamer demo``,
``streamer eval``)."""
