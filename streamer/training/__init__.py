"""Training the plate recogniser (:mod:`streamer.reading.recogniser`): synthetic plates,
datasets, the networks, the training loop, the ONNX export and the evaluation.

These modules run in the export environment (``streamer.vision.export.export_python``),
which has torch; the daemon never imports them. One command trains, exports and
measures the model (``python -m streamer.training train --out DIR``, see
:mod:`streamer.training.__main__`).
"""
