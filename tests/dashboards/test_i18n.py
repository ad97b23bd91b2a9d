"""Every text of the overview has its Japanese, with the same placeholders, and on the overview the overview's own
Japanese is what people read, even where another part translates the same English differently."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from continuity import service as continuity_service
from continuity.routing import SiteState
from core import db
from dashboards import overview
from dashboards.i18n_ja import MESSAGES
from tests.dashboards.conftest import World, fresh, signed_in

PACKAGE = Path(__file__).resolve().parents[2] / "dashboards"
_TEXT = re.compile(r"""(?<![\w.])_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def _texts() -> set[str]:
    found: set[str] = set()
    for path in [*(PACKAGE / "templates").rglob("*.html"), *PACKAGE.glob("*.py")]:
        for match in _TEXT.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1) or match.group(2) or "")
    for words in (
        overview.SITE_STATE_LABELS,
        overview.MODE_LABELS,
        overview.TARGET_LABELS,
        overview.JMA_ACTION_LABELS,
        overview.JMA_CONTROL_LABELS,
        overview.STOCK_STATE_LABELS,
        overview.CHECKED_WORDS,
    ):
        found.update(words.values())
    found.update(spec.title for spec in overview.SPECS)
    found.add("Overview")  # the navigation entry
    found.discard("")
    return found


def test_the_scan_finds_the_texts() -> None:
    texts = _texts()
    assert {"Everything normal", "Agents at {site}", "Safety broadcasts now", "{seconds} s ago"} <= texts
    assert len(texts) > 100


@pytest.mark.parametrize("text", sorted(_texts()))
def test_every_text_has_japanese(text: str) -> None:
    assert text in MESSAGES, text
    assert MESSAGES[text].strip()
    assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", MESSAGES[text]))


def test_the_overview_speaks_its_own_words_on_its_own_page(client: FlaskClient, world: World) -> None:
    # "Degraded" is 一部支障 on the incidents part's status page; a degraded site on the overview is 一部機能低下,
    # the routing board's word.
    theirs = importlib.import_module("incidents.i18n_ja").MESSAGES
    assert theirs["Degraded"] != MESSAGES["Degraded"] == "一部機能低下"
    continuity_service.declare_site_state(
        site=world.tky, state=SiteState.DEGRADED, reason="half the seats", actor="t"
    )
    user = world.users["supervisor"]
    user.language = "ja"
    db.session.commit()
    signed_in(client, user)
    html = fresh(client).get("/dashboard").text
    badge = re.search(rf'data-live="site-{world.tky.id}-state"[^>]*>([^<]*)<', html)
    assert badge and badge.group(1) == "一部機能低下"
