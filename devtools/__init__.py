"""Developer tooling for campaign-stop (simulators, demos, benchmarks); never shipped to Lambda."""
