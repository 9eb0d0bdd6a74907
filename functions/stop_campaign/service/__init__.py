"""Orchestration: processes one message and stops campaigns, using the domain's rules and the adapters."""
