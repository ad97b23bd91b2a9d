"""Coverage-guided fuzzing of the JMA bulletin parser with atheris (libFuzzer for Python).

Run by ``test_fuzz_jma.py::test_coverage_guided_fuzzing_finds_nothing`` for a few seconds, or by hand for longer::

    python tests/fuzz/jma_atheris.py -max_total_time=600 CORPUS_DIR

Any exception other than :class:`BulletinError` (or one from evaluating the rules on what was parsed) is a crash.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["ivr"]):
    from ivr.jma.parse import BulletinError, parse_bulletin
    from ivr.jma.rules import OrganizationContext, Site, default_ruleset, evaluate

CONTEXT = OrganizationContext(
    sites=(Site("TKY", "13", frozenset({"1310400"})),), staff_home_prefectures=frozenset({"13", "27"})
)
NOW = datetime(2030, 4, 1, tzinfo=UTC)


def one_input(data: bytes) -> None:
    try:
        bulletin = parse_bulletin(data)
    except BulletinError:
        return
    json.dumps(bulletin.to_json_dict(), allow_nan=False)
    evaluate(bulletin, default_ruleset(), CONTEXT, NOW)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
