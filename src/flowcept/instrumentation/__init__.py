"""Public import paths of the capture API (faces that only re-export)."""
