"""Test suites that users (and actstore's own tests) run against their own roots."""
