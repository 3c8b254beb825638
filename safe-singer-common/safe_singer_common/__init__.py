"""What the safe Singer plugins share: secret redaction, config validation, one CLI error policy."""
