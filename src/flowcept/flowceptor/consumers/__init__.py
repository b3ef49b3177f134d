"""Consumers of captured records: the persistence consumer's base class and the agent context manager."""
