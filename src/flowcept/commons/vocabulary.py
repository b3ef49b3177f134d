"""Vocabulary of record values (compatibility path: the definitions live in :mod:`flowcept.records`)."""

from flowcept.records import ML_Types, MimeType, PROV_AGENT, Status, Vocabulary

__all__ = ["Status", "ML_Types", "PROV_AGENT", "MimeType", "Vocabulary"]
