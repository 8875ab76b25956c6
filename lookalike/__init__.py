"""lookalike: find products that look like a photo, and tell whether two faces are the same person."""

__version__ = "0.1.0"
