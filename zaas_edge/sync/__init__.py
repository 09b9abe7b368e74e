"""Store-and-forward delivery to the central platform."""
