"""Reading plates: crop preprocessing, the OCR engines, plate formats, and the vote of a
track's reads."""
