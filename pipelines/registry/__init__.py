"""The model registry: signed, encrypted versions with lineage, and aliases moved by compare-and-swap."""
