"""One folder per documented CNN training failure; see harness.discovery."""
