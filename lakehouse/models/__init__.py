"""Models that ship with lakehouse for its tests and offline demo (see train_shapes_clip)."""
