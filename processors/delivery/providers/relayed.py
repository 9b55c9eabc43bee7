"""Provider notifications that arrive as an email: Amazon SES feedback sent by SNS to
an email (or email-json) subscription. The body is the same JSON document a webhook
would get (the SES notification, or its SNS envelope), so providers/ses.py reads it
and the notifications are SES's own: the same event ids as over the webhook, so one
fact arriving both ways is one fact.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import json
import re
from email.message import Message

from processors.delivery.notification import Notification
from processors.delivery.providers import ses
from processors.delivery.providers.mailparts import decoded, parts

# sendmail splits lines longer than its limit with '!' + newline + space; a JSON
# string cut that way (or folded by any relay) is joined back.
_SPLIT_LINE = re.compile(r"!?\r?\n[ \t]")
# The top-level keys that make a JSON object an SES notification or its SNS envelope.
_SES_KEYS = frozenset({"notificationType", "eventType"})


def notifications(msg: Message) -> list[Notification] | None:
    """The SES notifications an email carries as its text; None when it carries none.

    Raises NotificationError as ses.parse does (an SES type that is no delivery fact)."""
    for part in parts(msg):
        if part.is_multipart() or part.get_content_type() != "text/plain":
            continue
        document = _json_object(decoded(part).lstrip())
        if document is None:
            continue
        if _SES_KEYS & document.keys() or document.get("Type") == "Notification":
            return ses.parse(json.dumps(document).encode())
    return None


def _json_object(text: str) -> dict[str, object] | None:
    """The JSON object a text starts with (SNS appends an unsubscribe footer)."""
    if not text.startswith("{"):
        return None
    decoder = json.JSONDecoder()
    for candidate in (text, _SPLIT_LINE.sub("", text)):
        try:
            document, _end = decoder.raw_decode(candidate)
        except (ValueError, RecursionError):  # deep nesting is the sender's choice
            continue
        return document if isinstance(document, dict) else None
    return None
