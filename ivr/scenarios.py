"""Scenario templates: the questions a broadcast asks, their texts in Japanese and English, and the channel ladder.

Pure. A template is a JSON document (stored per organization in ``ivr_templates``, seeded from
:data:`BUILTIN`); :func:`parse_template` validates one and says exactly what is wrong, with the path of the field.
A broadcast keeps a snapshot of the template it was started with, so editing a template never changes a broadcast
that is already running.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ivr.ladder import Ladder, LadderError

LANGUAGES = ("ja", "en")
# One SMS segment in UCS-2 (any Japanese text) holds 70 characters; the link goes after it.
SMS_TEXT_LIMIT = 70
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TemplateError(ValueError):
    """Every problem found in a template definition, each as ``path: message``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Option:
    value: str  # the key pressed on the phone, the radio value on the web, the number in an SMS reply
    label: Mapping[str, str]

    def text(self, language: str) -> str:
        return self.label.get(language) or self.label["ja"]


@dataclass(frozen=True)
class Question:
    key: str
    text: Mapping[str, str]
    options: tuple[Option, ...]

    def prompt(self, language: str) -> str:
        return self.text.get(language) or self.text["ja"]

    def option(self, value: str) -> Option | None:
        return next((o for o in self.options if o.value == value), None)


@dataclass(frozen=True)
class ScenarioTemplate:
    key: str
    title: Mapping[str, str]
    intro: Mapping[str, str]  # read at the start of a call, shown on top of the answer page
    sms: Mapping[str, str]  # ≤ 70 characters; the answer link is appended
    questions: tuple[Question, ...]
    ladder: Ladder
    free_text: bool = True
    voice_message: bool = False  # offer to record a short message at the end of the call

    def text(self, field: str, language: str) -> str:
        values: Mapping[str, str] = getattr(self, field)
        return values.get(language) or values["ja"]

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": dict(self.title),
            "intro": dict(self.intro),
            "sms": dict(self.sms),
            "questions": [
                {
                    "key": q.key,
                    "text": dict(q.text),
                    "options": [{"value": o.value, "label": dict(o.label)} for o in q.options],
                }
                for q in self.questions
            ],
            "free_text": self.free_text,
            "voice_message": self.voice_message,
            "ladder": self.ladder.as_dict(),
        }


def _texts(data: Any, path: str, errors: list[str], *, limit: int | None = None) -> dict[str, str]:
    if not isinstance(data, Mapping):
        errors.append(f"{path}: must be an object with 'ja' and 'en' texts")
        return {"ja": "", "en": ""}
    out: dict[str, str] = {}
    for lang in LANGUAGES:
        value = data.get(lang)
        if not isinstance(value, str) or not value.strip():
            errors.append(f"{path}.{lang}: a non-empty text is required")
            value = ""
        elif limit is not None and len(value) > limit:
            errors.append(f"{path}.{lang}: {len(value)} characters, at most {limit} fit before the link")
        out[lang] = value.strip()
    unknown = set(data) - set(LANGUAGES)
    if unknown:
        errors.append(f"{path}: unknown languages {sorted(unknown)} (ja, en)")
    return out


def parse_template(data: Any) -> ScenarioTemplate:
    """Validate a template definition; raises :class:`TemplateError` listing every problem."""
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise TemplateError(["template: must be a JSON object"])
    allowed = {"key", "title", "intro", "sms", "questions", "free_text", "voice_message", "ladder"}
    unknown = set(data) - allowed
    if unknown:
        errors.append(f"template: unknown keys {sorted(unknown)}")
    key = data.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        errors.append("key: lower-case letters, digits and _ (starting with a letter), at most 40")
        key = ""
    title = _texts(data.get("title"), "title", errors)
    intro = _texts(data.get("intro"), "intro", errors)
    sms = _texts(data.get("sms"), "sms", errors, limit=SMS_TEXT_LIMIT)
    questions: list[Question] = []
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        errors.append("questions: at least one question is required")
        raw_questions = []
    if len(raw_questions) > 5:
        errors.append("questions: at most 5 (a phone menu longer than that loses people)")
    seen_keys: set[str] = set()
    for qi, raw in enumerate(raw_questions):
        qpath = f"questions[{qi}]"
        if not isinstance(raw, Mapping):
            errors.append(f"{qpath}: must be an object with key, text and options")
            continue
        qkey = raw.get("key")
        if not isinstance(qkey, str) or not _KEY.match(qkey):
            errors.append(f"{qpath}.key: lower-case letters, digits and _")
            qkey = f"q{qi}"
        elif qkey in seen_keys:
            errors.append(f"{qpath}.key: {qkey!r} is used twice")
        seen_keys.add(qkey)
        text = _texts(raw.get("text"), f"{qpath}.text", errors)
        options: list[Option] = []
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or not raw_options:
            errors.append(f"{qpath}.options: at least one option is required")
            raw_options = []
        values: set[str] = set()
        for oi, opt in enumerate(raw_options):
            opath = f"{qpath}.options[{oi}]"
            if not isinstance(opt, Mapping):
                errors.append(f"{opath}: must be an object with value and label")
                continue
            value = str(opt.get("value", ""))
            # 9 re-enters on the phone, so options use the keys 1-8.
            if not re.fullmatch(r"[1-8]", value):
                errors.append(f"{opath}.value: a single key 1-8, got {opt.get('value')!r}")
            elif value in values:
                errors.append(f"{opath}.value: {value} is used twice")
            values.add(value)
            options.append(Option(value=value, label=_texts(opt.get("label"), f"{opath}.label", errors)))
        questions.append(Question(key=qkey, text=text, options=tuple(options)))
    ladder: Ladder | None = None
    try:
        ladder = Ladder.from_dict(data.get("ladder", {}))
    except LadderError as exc:
        errors.append(str(exc))
    for flag in ("free_text", "voice_message"):
        if flag in data and not isinstance(data[flag], bool):
            errors.append(f"{flag}: must be true or false")
    if errors or ladder is None:
        raise TemplateError(errors)
    return ScenarioTemplate(
        key=key,
        title=title,
        intro=intro,
        sms=sms,
        questions=tuple(questions),
        ladder=ladder,
        free_text=bool(data.get("free_text", True)),
        voice_message=bool(data.get("voice_message", False)),
    )


def parse_sms_reply(text: str, questions: Sequence[Question]) -> dict[str, str]:
    """``"1 2"`` (or ``"12"``, full-width ``"１、２"``) → the chosen option per question, in question order.

    Digits that are not an option of their question are ignored; an empty dict means nothing usable.
    """
    normalised = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    digits = re.findall(r"\d", normalised)
    answers: dict[str, str] = {}
    for question, digit in zip(questions, digits, strict=False):
        if question.option(digit) is not None:
            answers[question.key] = digit
    return answers


def _o(value: str, ja: str, en: str) -> dict[str, Any]:
    return {"value": value, "label": {"ja": ja, "en": en}}


_SAFETY = {
    "key": "safety",
    "text": {"ja": "あなたの状況を選んでください。", "en": "How are you?"},
    "options": [
        _o("1", "無事", "Safe"),
        _o("2", "けがをしている", "Injured"),
        _o("3", "救助が必要", "Need help"),
        _o("4", "被災地域にいない", "Not in the affected area"),
    ],
}
_WORK = {
    "key": "work",
    "text": {"ja": "出勤できますか。", "en": "Can you work?"},
    "options": [
        _o("1", "出社できる", "Can come in"),
        _o("2", "在宅勤務できる", "Can work from home"),
        _o("3", "勤務できない", "Cannot work"),
    ],
}
_URGENT_LADDER = {
    "steps": [
        {"channels": ["sms", "email"], "wait_minutes": 5, "contact": 0},
        {"channels": ["voice"], "wait_minutes": 5, "contact": 0},
        {"channels": ["voice", "sms", "email"], "wait_minutes": 5, "contact": 1},
    ],
    "cycles": 2,
    "cycle_gap_minutes": 10,
    "escalate_to_managers": True,
}


def _disaster(key: str, title_ja: str, title_en: str, sms_ja: str, sms_en: str) -> dict[str, Any]:
    return {
        "key": key,
        "title": {"ja": title_ja, "en": title_en},
        "intro": {
            "ja": f"{title_ja}の安否確認です。",
            "en": f"This is a safety check: {title_en.lower()}.",
        },
        "sms": {"ja": sms_ja, "en": sms_en},
        "questions": [_SAFETY, _WORK],
        "free_text": True,
        "voice_message": True,
        "ladder": _URGENT_LADDER,
    }


BUILTIN: dict[str, dict[str, Any]] = {
    "earthquake": _disaster(
        "earthquake",
        "地震",
        "Earthquake",
        "【安否確認】地震が発生しました。安否と出勤可否を回答してください。",
        "Safety check (earthquake). Please answer:",
    ),
    "tsunami": _disaster(
        "tsunami",
        "津波",
        "Tsunami",
        "【安否確認】津波警報が発表されました。安全な場所で回答してください。",
        "Safety check (tsunami). Stay safe and answer:",
    ),
    "heavy_rain": _disaster(
        "heavy_rain",
        "大雨・台風",
        "Heavy rain / typhoon",
        "【安否確認】大雨・台風の影響について回答してください。",
        "Safety check (heavy rain/typhoon). Please answer:",
    ),
    "infectious_disease": {
        "key": "infectious_disease",
        "title": {"ja": "感染症", "en": "Infectious disease"},
        "intro": {"ja": "感染症に関する健康確認です。", "en": "This is a health check about an infection."},
        "sms": {
            "ja": "【健康確認】体調と勤務可否を回答してください。",
            "en": "Health check. Please answer:",
        },
        "questions": [
            {
                "key": "health",
                "text": {"ja": "体調を選んでください。", "en": "How is your health?"},
                "options": [
                    _o("1", "症状なし", "No symptoms"),
                    _o("2", "症状あり", "Have symptoms"),
                    _o("3", "陽性と診断された", "Tested positive"),
                    _o("4", "濃厚接触者", "Close contact"),
                ],
            },
            _WORK,
        ],
        "free_text": True,
        "voice_message": False,
        "ladder": {
            "steps": [
                {"channels": ["sms", "email"], "wait_minutes": 60, "contact": 0},
                {"channels": ["voice"], "wait_minutes": 60, "contact": 0},
            ],
            "cycles": 1,
            "escalate_to_managers": True,
        },
    },
    "system_outage": {
        "key": "system_outage",
        "title": {"ja": "システム障害", "en": "System outage"},
        "intro": {
            "ja": "システム障害に伴う勤務確認です。",
            "en": "This is a work check during a system outage.",
        },
        "sms": {
            "ja": "【勤務確認】システム障害が発生しています。勤務可否を回答してください。",
            "en": "System outage. Can you work? Please answer:",
        },
        "questions": [
            {
                "key": "work",
                "text": {"ja": "勤務できますか。", "en": "Can you work?"},
                "options": [
                    _o("1", "通常どおり勤務できる", "Can work normally"),
                    _o("2", "制限付きで勤務できる", "Can work with limits"),
                    _o("3", "勤務できない", "Cannot work"),
                ],
            },
            {
                "key": "location",
                "text": {"ja": "今どこにいますか。", "en": "Where are you now?"},
                "options": [
                    _o("1", "拠点", "At the site"),
                    _o("2", "自宅", "At home"),
                    _o("3", "その他", "Elsewhere"),
                ],
            },
        ],
        "free_text": True,
        "voice_message": False,
        "ladder": {
            "steps": [
                {"channels": ["sms", "email"], "wait_minutes": 10, "contact": 0},
                {"channels": ["voice"], "wait_minutes": 10, "contact": 0},
            ],
            "cycles": 1,
            "escalate_to_managers": True,
        },
    },
    "contact_check": {
        "key": "contact_check",
        "title": {"ja": "連絡先確認", "en": "Contact check"},
        "intro": {
            "ja": "連絡先の定期確認です。受信を確認してください。",
            "en": "This is the regular contact check. Please confirm you received it.",
        },
        "sms": {
            "ja": "【連絡先確認】この連絡先に届いたら、リンクから確認してください。",
            "en": "Contact check: please confirm via the link.",
        },
        "questions": [
            {
                "key": "received",
                "text": {"ja": "受信を確認しましたか。", "en": "Did you receive this?"},
                "options": [_o("1", "受信しました", "Received")],
            }
        ],
        "free_text": False,
        "voice_message": False,
        # Every contact point at once, once: the point is to learn which of them work.
        "ladder": {
            "steps": [{"channels": ["sms", "email"], "wait_minutes": 1440, "contact": None}],
            "cycles": 1,
            "escalate_to_managers": False,
        },
    },
}

BUILTIN_ORDER = (
    "earthquake",
    "tsunami",
    "heavy_rain",
    "infectious_disease",
    "system_outage",
    "contact_check",
)


def builtin(key: str) -> ScenarioTemplate:
    return parse_template(BUILTIN[key])
