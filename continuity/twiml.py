"""TwiML for inbound calls: what the carrier does with a routing decision.

Every step that can end without a person taking the call brings the call back to ``/hooks/voice/next`` with
``attempt`` = the decision's ``next_attempt`` (a position in the line-up), so the next target is tried: a
``<Dial>`` or ``<Enqueue>`` through its ``action``, everything else through a trailing ``<Redirect>``. Menus
(``<Gather>``) post the key to their own handler and fall through to that ``<Redirect>`` on silence.

Pure: builds documents from plain values; no database, no Flask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from continuity.plans import FaqEntry
from continuity.routing import EndpointKind, Message, RoutingDecision, TargetKind, endpoint_kind
from core.telephony.twiml import VoiceResponse

HOOKS = "/hooks/voice"
VOICES = {"ja": ("ja-JP", "Polly.Mizuki"), "en": ("en-US", "Polly.Joanna")}
MENU_TIMEOUT_S = 6
VOICEMAIL_MAX_S = 120
FAQ_ROUNDS = 3

FAQ_INTRO = Message("よくあるご質問をご案内します。", "Here are answers to frequently asked questions.")
FAQ_OTHER = Message("それ以外のご用件は0を押してください。", "For anything else, press 0.")
VOICEMAIL_GREETING = Message(
    "発信音のあとに、お名前とご用件をお話しください。折り返しお電話いたします。",
    "Please leave your name and message after the tone. We will call you back.",
)
VOICEMAIL_THANKS = Message(
    "メッセージをお預かりしました。お電話ありがとうございました。",
    "We have your message. Thank you for calling.",
)
SMS_OFFER = Message(
    "最新の状況をお知らせするページのリンクをSMSでお送りします。ご希望の方は2を押してください。",
    "To receive a text message with a link to our status page, press 2.",
)
SMS_SENT = Message("SMSをお送りしました。", "We have sent you a text message.")
SMS_IMPOSSIBLE = Message(
    "この電話番号にはSMSをお送りできません。", "We cannot send a text message to this number."
)
SMS_TEXT = Message("最新の状況はこちら:", "Our latest status:")
CALLBACK_OFFER = Message(
    "こちらから折り返しお電話することもできます。ご希望の方は1を押してください。",
    "To have us call you back at this number, press 1.",
)
CALLBACK_THANKS = Message(
    "折り返しお電話いたします。お電話ありがとうございました。",
    "We will call you back. Thank you for calling.",
)
CALLBACK_IMPOSSIBLE = Message(
    "番号が通知されていないため、折り返しができません。",
    "Your number is withheld, so we cannot call you back.",
)
QUEUE_HOLD = Message(
    "ただいま電話が大変混み合っております。このままお待ちください。",
    "All our agents are busy. Please stay on the line.",
)
NOT_IN_SERVICE = Message("この番号は現在使われておりません。", "This number is not in service.")
AGENT_UNKNOWN = Message(
    "この電話番号は在宅オペレーターとして登録されていません。",
    "This phone number is not registered as a home agent.",
)
AGENT_NO_PIN = Message(
    "暗証番号が設定されていません。ご自身のページで設定してください。",
    "You have no PIN yet. Please set one on your own page.",
)
AGENT_PIN = Message(
    "暗証番号を入力し、最後にシャープを押してください。", "Enter your PIN, then press the pound key."
)
AGENT_WRONG_PIN = Message("暗証番号が違います。", "That PIN is not correct.")
AGENT_MENU = Message(
    "受付を開始するには1、離席するには2を押してください。", "Press 1 to become available, or 2 to go away."
)
AGENT_AVAILABLE = Message(
    "受付を開始しました。お電話がつながります。", "You are available. Calls will ring your phone."
)
AGENT_AWAY = Message(
    "離席にしました。お電話はつながりません。", "You are away. Calls will not ring your phone."
)
GOODBYE = Message("お電話ありがとうございました。", "Thank you for calling.")


def hook(path: str, **params: Any) -> str:
    """A webhook URL relative to the host the carrier called (it resolves it against the current document)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{HOOKS}/{path}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class CallUrls:
    call_sid: str

    def next(self, attempt: int) -> str:
        return hook("next", attempt=attempt, call=self.call_sid)

    def step(self, name: str, attempt: int, **params: Any) -> str:
        return hook(name, attempt=attempt, call=self.call_sid, **params)


def say(container: Any, message: Message) -> None:
    """A recording when there is one, otherwise the Japanese text and then the English one."""
    if message.recording_url:
        container.play(message.recording_url)
        return
    for language, text in (("ja", message.ja), ("en", message.en)):
        if text:
            code, voice = VOICES[language]
            container.say(text, language=code, voice=voice)


def document(*messages: Message, hang_up: bool = True) -> str:
    response = VoiceResponse()
    for message in messages:
        say(response, message)
    if hang_up:
        response.hangup()
    return str(response)


def for_decision(decision: RoutingDecision, urls: CallUrls, faq: Sequence[FaqEntry] = ()) -> str:
    """The TwiML for the chosen target; hang up when the line-up is exhausted."""
    response = VoiceResponse()
    chosen = decision.chosen
    if chosen is None:
        response.hangup()
        return str(response)
    target = chosen.target
    after = decision.next_attempt
    kind = target.kind
    if kind in {TargetKind.SITE_AGENTS, TargetKind.SITE, TargetKind.HOME_AGENTS}:
        dial = response.dial(action=urls.next(after), method="POST", timeout=target.ring_timeout_s)
        for endpoint in chosen.endpoints:
            how = endpoint_kind(endpoint)
            if how is EndpointKind.CLIENT:
                dial.client(endpoint.split(":", 1)[1])
            elif how is EndpointKind.SIP:
                dial.sip(endpoint)
            else:
                dial.number(endpoint)
    elif kind is TargetKind.QUEUE:
        assert target.queue_name is not None
        response.enqueue(
            target.queue_name,
            action=urls.next(after),
            method="POST",
            wait_url=urls.step("queue-wait", after, max_wait=target.ring_timeout_s),
            wait_url_method="POST",
        )
    elif kind is TargetKind.FAQ_MENU:
        faq_menu(response, urls, after, target.message, faq, round_=0)
        response.redirect(urls.next(after), method="POST")
    elif kind is TargetKind.VOICEMAIL:
        say(response, target.message or VOICEMAIL_GREETING)
        response.record(
            action=urls.step("voicemail", after),
            method="POST",
            max_length=VOICEMAIL_MAX_S,
            timeout=5,
            play_beep=True,
        )
        response.redirect(urls.next(after), method="POST")  # nothing recorded: carry on
    elif kind is TargetKind.SMS_LINK:
        gather = response.gather(
            num_digits=1, action=urls.step("sms-link", after), method="POST", timeout=MENU_TIMEOUT_S
        )
        say(gather, target.message or SMS_OFFER)
        response.redirect(urls.next(after), method="POST")
    elif kind is TargetKind.CALLBACK_REQUEST:
        gather = response.gather(
            num_digits=1, action=urls.step("callback", after), method="POST", timeout=MENU_TIMEOUT_S
        )
        say(gather, target.message or CALLBACK_OFFER)
        response.redirect(urls.next(after), method="POST")
    else:  # announcement
        assert target.message is not None
        say(response, target.message)
        response.redirect(urls.next(after), method="POST")
    return str(response)


def faq_menu(
    response: Any,
    urls: CallUrls,
    after: int,
    greeting: Message | None,
    faq: Sequence[FaqEntry],
    *,
    round_: int,
) -> None:
    gather = response.gather(
        num_digits=1, action=urls.step("faq", after, round=round_), method="POST", timeout=MENU_TIMEOUT_S
    )
    if round_ == 0:
        say(gather, greeting or FAQ_INTRO)
    for entry in faq:
        say(
            gather,
            Message(
                f"{entry.question.ja}は{entry.digit}を押してください。" if entry.question.ja else "",
                f"For {entry.question.en}, press {entry.digit}." if entry.question.en else "",
            ),
        )
    say(gather, FAQ_OTHER)


def faq_answer(
    entry: FaqEntry | None, urls: CallUrls, after: int, faq: Sequence[FaqEntry], round_: int
) -> str:
    """The answer to the key pressed, then the menu again (a few rounds at most), then the next target."""
    response = VoiceResponse()
    if entry is not None:
        say(response, entry.answer)
        if round_ + 1 < FAQ_ROUNDS:
            faq_menu(response, urls, after, None, faq, round_=round_ + 1)
    response.redirect(urls.next(after), method="POST")
    return str(response)


def then_continue(urls: CallUrls, after: int, *messages: Message) -> str:
    response = VoiceResponse()
    for message in messages:
        say(response, message)
    response.redirect(urls.next(after), method="POST")
    return str(response)


def queue_wait(hold: Message, *, waited_s: int, max_wait_s: int) -> str:
    """Played to a caller waiting in a queue, again and again; past the wait limit the caller leaves and the
    Enqueue ``action`` moves the call on."""
    response = VoiceResponse()
    if waited_s >= max_wait_s:
        response.leave()
        return str(response)
    say(response, hold)
    response.pause(length=min(10, max(1, max_wait_s - waited_s)))
    return str(response)


def agent_pin_prompt(action: str, *first: Message) -> str:
    response = VoiceResponse()
    for message in first:
        say(response, message)
    gather = response.gather(action=action, method="POST", finish_on_key="#", timeout=10, num_digits=8)
    say(gather, AGENT_PIN)
    response.hangup()
    return str(response)


def agent_menu(action: str) -> str:
    response = VoiceResponse()
    gather = response.gather(action=action, method="POST", num_digits=1, timeout=MENU_TIMEOUT_S)
    say(gather, AGENT_MENU)
    response.hangup()
    return str(response)
