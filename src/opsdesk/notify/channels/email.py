"""E-mail over SMTP."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar

from opsdesk.core.settings import Settings
from opsdesk.notify.channels.base import DeliveryError
from opsdesk.notify.service import Claimed


class EmailChannel:
    name: ClassVar[str] = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def build(self, message: Claimed) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = message.recipient
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(localtime=False)
        # The same idempotency key always gives the same Message-ID, so a resend is recognisable.
        digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
        msg["Message-ID"] = f"<{digest}@opsdesk>"
        msg["X-Opsdesk-Idempotency-Key"] = message.idempotency_key
        body = message.body
        if message.incident_id is not None:
            body += f"\nOpen: {self.settings.base_url}/incidents/{message.incident_id}\n"
        msg.set_content(body)
        return msg

    async def send(self, message: Claimed) -> None:
        email = self.build(message)
        await asyncio.to_thread(self._send_sync, email)

    def _send_sync(self, email: EmailMessage) -> None:
        st = self.settings
        try:
            with smtplib.SMTP(st.smtp_host, st.smtp_port, timeout=st.smtp_timeout) as smtp:
                if st.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if st.smtp_user:
                    smtp.login(st.smtp_user, st.smtp_password.get_secret_value())
                smtp.send_message(email)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {st.smtp_host}:{st.smtp_port}: {exc}") from exc
