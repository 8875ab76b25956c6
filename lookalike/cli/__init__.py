"""The `lookalike` command."""
