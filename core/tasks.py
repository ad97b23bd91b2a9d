"""Kernel tasks (none yet beyond what domains register)."""
