"""Outgoing e-mail behind one small interface, chosen by ``settings.mail_backend``.

* ``smtp`` — :class:`SmtpBackend`, smtplib with ``settings.smtp_*`` (STARTTLS and login when configured).
* ``simulator`` — the embedded default: :class:`SimulatorMailBackend` hands the message to the telephone-network
  simulator (``POST <simulator_url>/_sim/mail``), whose scripted people may open its link and answer.
* ``memory`` — :class:`OutboxMailBackend`, keeps messages in a list (tests).
"""

from __future__ import annotations

import smtplib
import threading
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any, Protocol

import requests


class MailError(Exception):
    """The message could not be handed over. ``transient`` says whether trying again later may work."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    sender: str = ""
    sender_name: str = "Lifeline"
    headers: dict[str, str] = field(default_factory=dict)


class MailBackend(Protocol):
    def send(self, mail: Mail) -> str:
        """Hand ``mail`` over; returns a message id. Raises :class:`MailError`."""
        ...


def _message(mail: Mail, default_sender: str) -> EmailMessage:
    msg = EmailMessage()
    sender = mail.sender or default_sender
    msg["From"] = formataddr((mail.sender_name, sender))
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[-1] or "lifeline.invalid")
    for name, value in mail.headers.items():
        msg[name] = value
    msg.set_content(mail.text)
    return msg


class SmtpBackend:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str = "",
        password: str = "",
        starttls: bool = False,
        sender: str,
        timeout_s: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.starttls = starttls
        self.sender = sender
        self.timeout_s = timeout_s

    def send(self, mail: Mail) -> str:
        msg = _message(mail, self.sender)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailError(f"recipient refused: {exc.recipients}", transient=False) from exc
        except smtplib.SMTPResponseException as exc:
            # 4xx replies are "try again later", 5xx are final.
            raise MailError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", transient=exc.smtp_code < 500
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"SMTP server unreachable: {exc}", transient=True) from exc
        return str(msg["Message-ID"])


class SimulatorMailBackend:
    def __init__(self, *, simulator_url: str, sender: str, timeout_s: float = 10.0) -> None:
        self.url = simulator_url.rstrip("/") + "/_sim/mail"
        self.sender = sender
        self.timeout_s = timeout_s

    def send(self, mail: Mail) -> str:
        msg = _message(mail, self.sender)
        payload = {
            "from": mail.sender or self.sender,
            "to": mail.to,
            "subject": mail.subject,
            "body": mail.text,
        }
        try:
            response = requests.post(self.url, json=payload, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise MailError(f"mail simulator unreachable: {exc}", transient=True) from exc
        if response.status_code >= 500:
            raise MailError(f"mail simulator answered {response.status_code}", transient=True)
        if response.status_code >= 400:
            raise MailError(f"mail simulator refused: {response.text[:200]}", transient=False)
        try:
            body: Any = response.json()
        except ValueError:
            body = {}
        return str(body.get("id") or body.get("sid") or msg["Message-ID"])


class OutboxMailBackend:
    def __init__(self) -> None:
        self.outbox: list[Mail] = []
        self._lock = threading.Lock()

    def send(self, mail: Mail) -> str:
        with self._lock:
            self.outbox.append(mail)
        return f"<{uuid.uuid4().hex}@outbox.invalid>"


_memory_outbox = OutboxMailBackend()


def make_mail_backend(settings: Any) -> MailBackend:
    kind = settings.mail_backend
    if kind == "smtp":
        return SmtpBackend(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            sender=settings.mail_from,
        )
    if kind == "memory":
        return _memory_outbox
    if kind == "simulator":
        return SimulatorMailBackend(simulator_url=settings.simulator_url, sender=settings.mail_from)
    raise ValueError(f"unknown LIFELINE_MAIL_BACKEND {kind!r} (smtp, simulator, memory)")
