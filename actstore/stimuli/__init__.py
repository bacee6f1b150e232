"""actstore.stimuli."""
