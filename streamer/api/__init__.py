"""The HTTP side: the seed's endpoints and single-image processing, operations, metrics
and the dashboard (``web/``)."""
