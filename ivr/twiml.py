"""TwiML for the safety-check call. Pure: template + language + URLs in, XML text out.

The call, per question: read the question and its options in a ``<Gather>``; a key that is an option is read
back ("you pressed 2, injured — press 1 to confirm, 9 to re-enter"); 1 records it and goes on, 9 asks again.
Silence asks again, twice, then says goodbye. An answering machine hears a short message (the SMS link is sent
separately). ``base`` is the call's webhook URL prefix, e.g. ``https://host/hooks/ivr/voice/123``.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.telephony.twiml import VoiceResponse
from ivr.scenarios import Question, ScenarioTemplate

MAX_SILENT_RETRIES = 2
CONFIRM_KEY = "1"
REENTER_KEY = "9"

VOICES = {
    "ja": {"voice": "Polly.Mizuki", "language": "ja-JP"},
    "en": {"voice": "Polly.Joanna", "language": "en-US"},
}

PHRASES: dict[str, dict[str, str]] = {
    "ja": {
        "option": "{label}は{value}",
        "options_tail": "を押してください。",
        "you_pressed": "{value}、{label}、が押されました。よろしければ1を、入力し直す場合は9を押してください。",
        "invalid": "その番号は選択肢にありません。",
        "goodbye": "入力が確認できませんでした。後ほどSMSまたはメールのリンクから回答してください。",
        "thanks": "回答ありがとうございました。ご安全に。",
        "record": "伝えたいことがあれば、発信音のあとにお話しください。終わったら電話を切ってください。",
        "machine": "安否確認のお知らせです。SMSでお送りするリンクから回答してください。",
    },
    "en": {
        "option": "for {label}, press {value}",
        "options_tail": ".",
        "you_pressed": "You pressed {value}, {label}. Press 1 to confirm, or 9 to re-enter.",
        "invalid": "That is not one of the choices.",
        "goodbye": "We did not get an answer. Please answer later with the link in the text message or e-mail.",
        "thanks": "Thank you for answering. Stay safe.",
        "record": "If you want to leave a message, speak after the tone, then hang up.",
        "machine": "This is a safety check. Please answer with the link we are sending you by text message.",
    },
}


@dataclass(frozen=True)
class CallScript:
    template: ScenarioTemplate
    language: str
    base: str

    @property
    def lang(self) -> str:
        return self.language if self.language in VOICES else "ja"

    def phrase(self, key: str, **params: str) -> str:
        return PHRASES[self.lang][key].format(**params)

    def _say(self, target: VoiceResponse, text: str) -> None:
        target.say(text, **VOICES[self.lang])

    def menu_text(self, question: Question) -> str:
        parts = [self.phrase("option", label=o.text(self.lang), value=o.value) for o in question.options]
        joiner = "、" if self.lang == "ja" else ", "
        text = joiner.join(parts) + self.phrase("options_tail")
        return f"{question.prompt(self.lang)} {text[0].upper() + text[1:] if self.lang == 'en' else text}"

    def _ask(self, response: VoiceResponse, index: int, retry: int) -> None:
        question = self.template.questions[index]
        gather = response.gather(
            input="dtmf", num_digits=1, timeout=8, action=f"{self.base}/q/{index}", method="POST"
        )
        self._say(gather, self.menu_text(question))
        # Reached only when nothing was pressed.
        if retry + 1 > MAX_SILENT_RETRIES:
            response.redirect(f"{self.base}/goodbye", method="POST")
        else:
            response.redirect(f"{self.base}/ask/{index}?retry={retry + 1}", method="POST")


def greeting(script: CallScript) -> str:
    response = VoiceResponse()
    script._say(response, script.template.text("intro", script.lang))
    script._ask(response, 0, 0)
    return str(response)


def ask(script: CallScript, index: int, *, retry: int = 0, invalid: bool = False) -> str:
    response = VoiceResponse()
    if retry > MAX_SILENT_RETRIES:
        return goodbye(script)
    if invalid:
        script._say(response, script.phrase("invalid"))
    script._ask(response, index, retry)
    return str(response)


def pressed(script: CallScript, index: int, digits: str) -> str:
    """The answer to a question's menu: read back a valid option, or say it is not one and ask again."""
    question = script.template.questions[index]
    option = question.option(digits.strip()[:1]) if digits else None
    if option is None:
        return ask(script, index, invalid=bool(digits))
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf",
        num_digits=1,
        timeout=8,
        action=f"{script.base}/q/{index}/confirm/{option.value}",
        method="POST",
    )
    script._say(gather, script.phrase("you_pressed", value=option.value, label=option.text(script.lang)))
    response.redirect(f"{script.base}/ask/{index}?retry=1", method="POST")
    return str(response)


def confirmed_is(digits: str) -> bool:
    return digits.strip()[:1] == CONFIRM_KEY


def after_answer(script: CallScript, index: int) -> str:
    """What follows a confirmed answer to question ``index``: the next question, or the closing."""
    if index + 1 < len(script.template.questions):
        return ask(script, index + 1)
    response = VoiceResponse()
    if script.template.voice_message:
        script._say(response, script.phrase("record"))
        response.record(
            max_length=60, timeout=5, play_beep=True, action=f"{script.base}/recorded", method="POST"
        )
    script._say(response, script.phrase("thanks"))
    response.hangup()
    return str(response)


def thanks(script: CallScript) -> str:
    response = VoiceResponse()
    script._say(response, script.phrase("thanks"))
    response.hangup()
    return str(response)


def goodbye(script: CallScript) -> str:
    response = VoiceResponse()
    script._say(response, script.phrase("goodbye"))
    response.hangup()
    return str(response)


def machine(script: CallScript) -> str:
    response = VoiceResponse()
    script._say(response, script.phrase("machine"))
    response.hangup()
    return str(response)


def empty() -> str:
    """For a call that should not go on (unknown attempt, closed broadcast): hang up politely."""
    response = VoiceResponse()
    response.hangup()
    return str(response)
