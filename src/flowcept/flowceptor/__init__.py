"""Compatibility package: the public path of the agent context manager (``flowceptor.consumers.agent``)."""
