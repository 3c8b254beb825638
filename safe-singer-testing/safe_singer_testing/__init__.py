"""What the repository's test suites share: PostgreSQL fixtures (the pytest plugin in
``plugin.py``), the Jira and DynamoDB Streams emulators (``emulators/``) and the helpers that
drive the plugins as users do. For tests only; never published."""
