"""The I/O edges, one job each: the Kore.ai HTTP call, credentials, SNS results, SQS queues, the SSM alarm map."""
