"""Measuring accuracy on labelled photos, plate crops and videos (``streamer eval``)."""
