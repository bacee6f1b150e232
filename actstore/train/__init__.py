"""actstore.train."""
