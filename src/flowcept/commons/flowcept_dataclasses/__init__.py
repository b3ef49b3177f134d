"""Record classes (compatibility path)."""
