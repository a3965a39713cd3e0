"""civicflow: a district's department feeds, validated and merged into one PostgreSQL warehouse."""

__version__ = "0.1.0"
