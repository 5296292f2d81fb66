"""CLI commands of the recorder (placeholder until the recorder lands)."""
