"""One run: fit with Lightning, its metrics and its record on disk."""
