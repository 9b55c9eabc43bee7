"""Auto-replies (vacation, out of office): a person's mail system answering for them.

They reach the bounce mailbox because they answer the envelope sender, and they
name addresses ('I am away, write to jo@example.com') that must never be read as
failed recipients. Recognized by what RFC 3834 and the common responders put in the
headers:

- `Auto-Submitted: auto-replied` (RFC 3834), unless the sender is a mail system:
  Postfix and others mark their bounces the same way;
- the responders' own markers: `X-Autoreply`, `X-Autorespond`, `X-Autoresponder`,
  `Precedence: auto_reply`;
- the subject prefixes of the common responders ('Automatic reply:' from Exchange
  and Outlook, 'Auto:', 'Out of Office', 'Autoreply', 'Abwesenheitsnotiz',
  'Réponse automatique'...).

Only an email without a delivery report is judged (dsn.read_bounce asks after
looking for one), so a DSN is never taken for an auto-reply.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import re
from email.message import Message

from processors.delivery.providers.mailparts import header

_MARKERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply")
_SUBJECT = re.compile(
    r"^\s*(?:"
    r"auto(?:matic|matische)?[ -]?(?:reply|response|antwort|responder)|auto:|"
    r"out of (?:the )?office|on vacation|vacation reply|autoreply|"
    r"abwesenheit|r[ée]ponse automatique|risposta automatica|respuesta autom[áa]tica"
    r")",
    re.IGNORECASE,
)
# Mail systems send bounces, never auto-replies; several mark bounces auto-replied.
_MAIL_SYSTEM = re.compile(r"mailer-daemon|postmaster|mail delivery|<>", re.IGNORECASE)


def is_auto_reply(msg: Message) -> bool:
    """Whether `msg` (an email with no delivery report) is an automatic reply."""
    for name in _MARKERS:
        value = header(msg, name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return True
    if (header(msg, "Precedence") or "").strip().lower() == "auto_reply":
        return True
    if _SUBJECT.match(header(msg, "Subject") or ""):
        return True
    submitted = (header(msg, "Auto-Submitted") or "").strip().lower()
    from_system = bool(_MAIL_SYSTEM.search(header(msg, "From") or "<>"))
    return submitted.startswith("auto-replied") and not from_system
