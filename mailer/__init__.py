"""solidarity-mailer: a multilingual email campaign engine for human-rights campaigns."""

__version__ = "0.1.0"
