"""What the daemon keeps and looks up: the dues of each plate, and the recent events."""
