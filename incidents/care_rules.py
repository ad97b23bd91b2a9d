"""Which answers put a person on the care follow-up list, and which mean "safe". Pure: template dicts in, values out.

Templates are edited by crisis managers, so option digits mean nothing on their own ("2" is "injured" in the
earthquake template and "with limits" in the outage one). The decision reads the option's labels in the
broadcast's own template snapshot: what the person actually saw and chose.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any


class CareReason(enum.StrEnum):
    INJURED = "injured"
    NEED_HELP = "need_help"
    NEED_TO_TALK = "need_to_talk"
    UNWELL = "unwell"  # tested positive: isolated, may need supplies or someone to check in


# The question a crisis manager may add to any template: "do you need someone to talk to?" (ivr template schema).
NEED_TO_TALK_QUESTION: dict[str, Any] = {
    "key": "need_to_talk",
    "text": {"ja": "誰かに話を聞いてほしいですか。", "en": "Do you need someone to talk to?"},
    "options": [
        {"value": "1", "label": {"ja": "はい", "en": "Yes"}},
        {"value": "2", "label": {"ja": "いいえ", "en": "No"}},
    ],
}

_NEGATIVE = (
    "no ",
    "no,",
    "not ",
    "none",
    "don't",
    "do not",
    "いいえ",
    "不要",
    "必要ない",
    "必要なし",
    "なし",
)
_YES = ("yes", "はい", "お願いします", "please")
_TALK_QUESTION_WORDS = ("talk", "話を聞", "相談", "counsel", "メンタル")
_REASON_WORDS: tuple[tuple[CareReason, tuple[str, ...]], ...] = (
    (CareReason.INJURED, ("injur", "hurt", "wounded", "けが", "怪我", "負傷", "ケガ")),
    (
        CareReason.NEED_HELP,
        (
            "need help",
            "need support",
            "need rescue",
            "rescue",
            "救助",
            "支援が必要",
            "助けが必要",
            "助けて",
            "要支援",
        ),
    ),
    (CareReason.UNWELL, ("tested positive", "positive", "陽性")),
)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def _is_negative(label: str) -> bool:
    return label == "no" or label.startswith(_NEGATIVE) or label.endswith(("不要", "ない", "なし"))


def reason_for_option(question: Mapping[str, Any], option: Mapping[str, Any]) -> CareReason | None:
    """The care reason an option stands for, or None. Reads every language of the labels."""
    labels = [_norm(str(v)) for v in (option.get("label") or {}).values() if v]
    texts = [_norm(str(v)) for v in (question.get("text") or {}).values() if v]
    key = _norm(str(question.get("key", "")))
    if any(_is_negative(label) for label in labels):
        return None
    talk_question = key in ("need_to_talk", "talk", "counseling") or any(
        word in text for text in texts for word in _TALK_QUESTION_WORDS
    )
    if talk_question and any(label.startswith(_YES) for label in labels):
        return CareReason.NEED_TO_TALK
    for reason, words in _REASON_WORDS:
        if any(word in label for label in labels for word in words):
            return reason
    return None


_SAFE_WORDS = ("safe", "無事", "not in the affected area", "被災地域にいない", "被災していない")


def is_safe_option(option: Mapping[str, Any]) -> bool:
    labels = [_norm(str(v)) for v in (option.get("label") or {}).values() if v]
    if any(label.startswith(("not safe", "unsafe")) for label in labels):
        return False
    return any(label == word or label.startswith(word) for label in labels for word in _SAFE_WORDS)


def care_options(template: Mapping[str, Any]) -> dict[tuple[str, str], CareReason]:
    """``(question key, option value) → reason`` for every option of the template that calls for care."""
    out: dict[tuple[str, str], CareReason] = {}
    for question in template.get("questions") or []:
        for option in question.get("options") or []:
            reason = reason_for_option(question, option)
            if reason is not None:
                out[(str(question.get("key")), str(option.get("value")))] = reason
    return out


def safe_options(template: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {
        (str(q.get("key")), str(o.get("value")))
        for q in template.get("questions") or []
        for o in q.get("options") or []
        if is_safe_option(o)
    }


def reasons_for(
    answers: Iterable[tuple[str, str]], options: Mapping[tuple[str, str], CareReason]
) -> list[CareReason]:
    """The care reasons in one person's current answers, in a stable order, each once."""
    found = {options[(key, value)] for key, value in answers if (key, value) in options}
    return [reason for reason in CareReason if reason in found]


def answered_safe(
    answers: Iterable[tuple[str, str]], safe: set[tuple[str, str]], care: Mapping[Any, Any]
) -> bool:
    """Safe means: at least one "safe" answer and nothing that calls for care."""
    items = list(answers)
    return any(item in safe for item in items) and not any(item in care for item in items)
