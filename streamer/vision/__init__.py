"""Seeing plates: the detector and its model, where and when to detect (region of
interest, motion gate), and tracking each plate from frame to frame."""
