"""Compatibility paths of the reference's adapters (thin faces over :mod:`flowcept.adapters`)."""
