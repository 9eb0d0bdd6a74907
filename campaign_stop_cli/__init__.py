"""campaign-stop: the operator's command line (not part of the Lambda bundle)."""
