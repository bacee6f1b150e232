"""actstore.report."""
