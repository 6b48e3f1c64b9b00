"""Database access: engine, sessions and ORM models."""
