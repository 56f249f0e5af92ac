"""Where alerts go, chosen by configuration: the log (default), a Slack-compatible webhook, or email."""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage

import dagster as dg

from ml.alerts import Alert

log = logging.getLogger("alerts")


class AlertSink(dg.ConfigurableResource):
    kind: str = "log"  # log | webhook | email
    webhook_url: str = ""
    smtp_host: str = "localhost"
    smtp_port: int = 25
    email_from: str = "ml-alerts@localhost"
    email_to: str = ""  # comma-separated; the owner's address book is outside this project

    def send(self, alert: Alert) -> None:
        text = alert.text()
        if self.kind == "log":
            log.warning(text)
        elif self.kind == "webhook":
            body = json.dumps({"text": text}).encode()
            request = urllib.request.Request(self.webhook_url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        elif self.kind == "email":
            message = EmailMessage()
            message["Subject"] = text.splitlines()[0][:150]
            message["From"], message["To"] = self.email_from, self.email_to
            message.set_content(text)
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=10) as smtp:
                smtp.send_message(message)
        else:
            raise ValueError(f"unknown alert sink kind {self.kind!r}: use log, webhook or email")
