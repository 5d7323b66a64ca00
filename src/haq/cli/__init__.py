"""Command-line interface (see __main__.py)."""
