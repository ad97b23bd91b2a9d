"""Fuzzing: hypothesis (and atheris for the JMA parser, when it is installed) against every input from outside."""

from __future__ import annotations

# The safety-broadcast fixtures (a small organization, fake carrier adapters) serve these tests as well.
from tests.ivr.conftest import backend, outbound, world  # noqa: F401
