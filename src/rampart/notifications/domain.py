"""Notifications as plain values: what is sent, to whom, and when a failed send is retried."""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPIC_EMAIL = "notify.email"
TOPIC_SMS = "notify.sms"
TOPICS = (TOPIC_EMAIL, TOPIC_SMS)

MAX_SUBJECT = 200
MAX_BODY = 20_000
MAX_SMS = 480


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    #: What the message is about (`verify-email`, `password-reset`, `new-device`, ...).
    kind: str
    id: str = ""


@dataclass(frozen=True, slots=True)
class SmsMessage:
    to: str
    text: str
    kind: str
    id: str = ""


class DeliveryError(Exception):
    """A send failed and may succeed later (connection refused, 4xx SMTP reply, timeout)."""


class PermanentDeliveryError(DeliveryError):
    """A send that will never succeed (malformed address, 5xx SMTP reply): not retried."""


def backoff_seconds(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before the next try after `attempts` failed ones: exponential, capped, jittered.

    The jitter (up to +25 %) keeps a batch that failed together (an SMTP outage) from retrying in
    lockstep and failing together again.
    """
    exponent = max(0, min(attempts - 1, 30))
    delay = min(cap, base * (2**exponent))
    return delay * (1.0 + 0.25 * (rng or random).random())
