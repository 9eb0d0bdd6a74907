"""How events arrive: an SQS batch, SNS notifications, a direct invocation (or EventBridge)."""
