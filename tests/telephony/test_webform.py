"""How a simulated person fills the first POST form of a page."""

from __future__ import annotations

import pytest

from core.telephony.simulator.webform import first_post_form

PAGE = """
<form action="/search"><input name="q" value="ignored"></form>
<form method="POST" action="/r/abc">
  <input type="hidden" name="csrf_token" value="t0k&amp;en">
  <input type="hidden" name="lang" value="ja">
  <input type="radio" name="safety" value="1"><input type="radio" name="safety" value="2">
  <input type="radio" name="safety" value="3">
  <select name="site"><option value="tokyo">Tokyo</option><option value="osaka" selected>Osaka</option></select>
  <input type="radio" name="work" value="office" checked><input type="radio" name="work" value="home">
  <input type="checkbox" name="family_safe" value="yes" checked>
  <input type="checkbox" name="needs_ride" value="yes">
  <input type="text" name="comment" value="">
  <input type="text" name="old" value="x" disabled>
  <textarea name="note">on my way</textarea>
  <input type="submit" name="go" value="Send">
  <button type="submit" name="second" value="no">ignored</button>
</form>
<form method="post" action="/other"><input type="hidden" name="never" value="sent"></form>
"""


@pytest.mark.parametrize(
    ("answers", "safety", "work"),
    [
        (["2", "home"], "2", "home"),  # values as they are
        (["3", "2"], "3", "home"),  # "2" is not a value of the second group: its second option
        (["9"], "1", "office"),  # unknown answer, missing answer: the first option
        ([], "1", "office"),
    ],
)
def test_radio_groups_are_answered_in_order(answers: list[str], safety: str, work: str) -> None:
    form = first_post_form(PAGE)
    assert form is not None
    fields = form.fill(answers)
    assert ("safety", safety) in fields
    assert ("work", work) in fields


def test_everything_else_is_sent_as_the_page_has_it() -> None:
    form = first_post_form(PAGE)
    assert form is not None
    assert form.action == "/r/abc"
    fields = dict(form.fill(["1", "office"]))
    assert fields == {
        "csrf_token": "t0k&en",
        "lang": "ja",
        "safety": "1",
        "work": "office",
        "site": "osaka",
        "family_safe": "yes",
        "comment": "",
        "note": "on my way",
        "go": "Send",
    }


def test_a_page_without_a_post_form() -> None:
    assert first_post_form("<form><input name=q></form><p>Thanks</p>") is None
