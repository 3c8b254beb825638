"""Emulators the taps run against over real HTTP: Jira (``jira``) and DynamoDB Streams
(``dynamodb_streams``)."""
