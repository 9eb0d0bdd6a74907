"""campaign-stop: stops Kore.ai campaigns on request (see README.md)."""
