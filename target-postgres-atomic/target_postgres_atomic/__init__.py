"""target-postgres-atomic: a PostgreSQL target that never loses or half-writes data."""
