"""tap-jira-safe: a Singer tap for Jira that never misses an issue."""
