"""Lifeline's shared kernel: app factory, configuration, database, auth, directory, telephony, CLI."""
