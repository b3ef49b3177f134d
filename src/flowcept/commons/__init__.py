"""Compatibility paths of the reference implementation (faces only)."""
