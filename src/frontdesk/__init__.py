"""frontdesk: an open-source AI phone agent."""

__version__ = "0.1.0"
