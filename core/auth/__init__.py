"""Users, roles and scopes, login, API tokens and the append-only audit log."""
