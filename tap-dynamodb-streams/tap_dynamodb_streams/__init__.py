"""tap-dynamodb-streams: every DynamoDB Streams change event, or a loud error."""
