"""One folder per documented CNN training failure; see failbench.discovery."""
