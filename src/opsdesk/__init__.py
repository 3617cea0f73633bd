"""opsdesk: the IT operations manager's desk."""

__version__ = "0.1.0"
