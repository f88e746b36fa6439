"""harness: everything that is not one case."""
