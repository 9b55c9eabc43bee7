"""Synthetic conversation traffic: realistic, seed-reproducible event streams.

The demo and the benchmarks need a support platform's worth of events without a
support platform. `generate` simulates conversations across several tenant
accounts, on email and chat, and returns their events as one list ordered by
`occurred_at` (ties broken by conversation, then by the order the simulation
produced them), ready to publish keyed by conversation_id:

- every conversation opens with CONVERSATION_CREATED, then lives a plausible
  life: customer messages, staff replies and internal notes, triage (tags,
  moves, reassignments, subject edits, reminders, workflows), holds,
  resolve/reopen cycles, archiving, CSAT surveys; chats meet a chatbot first
  and end; email replies are followed by what the provider reports (sent,
  delivered, bounced, failed, complaints) and by views, some of them from mail
  scanners fetching the tracking pixel within seconds of delivery;
- every event passes `schemas.validation.check_event`, and each conversation's
  events agree with one another: a REASSIGNED names the previous assignee, a
  MOVED the current inbox, a TAG_REMOVED a tag that was added, a MERGED an
  earlier conversation of the same account and customer.

It must never read the clock or the global `random`: the same seed and
arguments give identical events, event_ids included, so a replayed demo is
deduplicated rather than doubled. It never produces the derived events the
processors own (MERGE_RECEIVED, REMINDER_TRIGGERED, AUTO_RESOLVED); instead it
leaves reminders due and some chats idle, so the processors have work to do.

`to_json` renders an event in the JSON-lines shape `convotrail produce` reads.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import Enum
from itertools import accumulate
from typing import Any, TypeAlias

from schemas.model import (
    TYPE_BY_PAYLOAD,
    Actor,
    ActorKind,
    Archived,
    AttachmentDeleted,
    BounceClass,
    BounceDetected,
    Channel,
    ChatbotHandedOver,
    ChatbotResolved,
    ChatEnded,
    ConversationCreated,
    ConversationEvent,
    ConversationStatus,
    CsatSurveySent,
    CustomerMarkedSpam,
    DeliveryFailed,
    InboxRef,
    MarkedSpam,
    Merged,
    MessageAdded,
    MessageDelivered,
    MessageDirection,
    MessageSent,
    MessageViewed,
    MessageVisibility,
    Moved,
    NotePinned,
    NoteUnpinned,
    Payload,
    PutOnHold,
    Reassigned,
    ReminderAdded,
    ReminderCancelled,
    Reopened,
    RepliedAndArchived,
    RepliedAndReopened,
    Resolved,
    StaffRef,
    SubjectEdited,
    TagAdded,
    TagRemoved,
    Unarchived,
    UnmarkedSpam,
    ViewerKind,
    ViewSource,
    WorkflowRan,
    WorkflowTrigger,
)

__all__ = ["SCANNER_USER_AGENTS", "TrafficProfile", "generate", "to_json"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficProfile:
    """The shape of the traffic: tenants, team sizes, channel mix, how often things happen.

    Shares are probabilities in [0, 1]. The number of conversations and the start
    time are arguments of `generate`, not fields, so the two cannot disagree.
    """

    accounts: int = 4
    staff_per_account: int = 6
    # New conversations arrive as a Poisson process at this rate.
    conversations_per_hour: float = 120.0
    chat_share: float = 0.35
    # Email conversations a staff member starts (outreach) rather than a customer.
    outreach_share: float = 0.08
    # Chats a chatbot answers before a human does.
    chatbot_share: float = 0.5
    returning_customer_share: float = 0.3
    # Of returning customers' new conversations: merged into their previous one.
    duplicate_merge_share: float = 0.1
    spam_share: float = 0.02
    # Resolved conversations that come back (customer writes again, or staff follows up).
    reopen_share: float = 0.15
    csat_share: float = 0.5
    bounce_share: float = 0.03
    delivery_failure_share: float = 0.01
    complaint_share: float = 0.004
    # Delivered email replies whose tracking pixel a mail scanner prefetches.
    scanner_share: float = 0.15

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError(f"accounts must be at least 1, not {self.accounts}")
        if self.staff_per_account < 1:
            raise ValueError(f"staff_per_account must be at least 1, not {self.staff_per_account}")
        if not self.conversations_per_hour > 0:
            raise ValueError("conversations_per_hour must be positive")
        for share in fields(self):
            value = getattr(self, share.name)
            if share.name.endswith("_share") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{share.name} must be between 0 and 1, not {value}")


def generate(
    seed: int, conversations: int, start: datetime, profile: TrafficProfile | None = None
) -> list[ConversationEvent]:
    """The events of `conversations` simulated conversations, the first arriving at `start`.

    Returns a list (not an iterator) because events of many conversations
    interleave in time, so the whole run is simulated before anything is ordered.
    `start` must be timezone-aware; it is kept to the millisecond, like the wire.
    """
    if conversations < 0:
        raise ValueError(f"conversations must not be negative, not {conversations}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (naive datetimes are ambiguous)")
    origin = start.astimezone(UTC)
    origin = origin.replace(microsecond=origin.microsecond // 1000 * 1000)
    simulation = _Simulation(seed, profile or TrafficProfile(), origin)
    simulation.run(conversations)
    return simulation.events()


def to_json(event: ConversationEvent) -> dict[str, Any]:
    """The event as `convotrail produce` reads it (and `schemas.examples` shows it)."""
    record = event.to_avro()
    # The Avro form names the payload's record; the JSON form lets `type` say it.
    record["payload"] = record["payload"][1]
    converted: dict[str, Any] = _json_value(record)
    return converted


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value


# --- the world: accounts, their staff, inboxes, workflows and customers --------------------

_BRANDS = (
    "Acme", "Northwind", "Globex", "Initech", "Contoso", "Fabrikam",
    "Tailspin", "Wingtip", "Litware", "Proseware", "Adatum", "Lamna",
)  # fmt: skip
_STAFF_NAMES = (
    "Dana", "Lee", "Sam", "Priya", "Marco", "Aisha", "Jonas", "Mei", "Carlos", "Fatima",
    "Noah", "Ingrid", "Kofi", "Yuki", "Omar", "Elena", "Ravi", "Zoe", "Tariq", "Hanna",
)  # fmt: skip
_FIRST_NAMES = (
    "Jo", "Alex", "Maria", "Wei", "Fatou", "Liam", "Sofia", "Arjun", "Chloe", "Mateo",
    "Amara", "Lukas", "Nora", "Hiro", "Leila", "Ben", "Ines", "Kwame", "Olga", "Diego",
)  # fmt: skip
_LAST_NAMES = (
    "Park", "Smith", "Garcia", "Chen", "Diallo", "Murphy", "Rossi", "Patel", "Martin", "Lopez",
    "Okafor", "Weber", "Berg", "Tanaka", "Haddad", "Cohen", "Silva", "Mensah", "Ivanova", "Costa",
)  # fmt: skip
# Reserved for documentation (RFC 2606): generated mail can never reach anyone.
_CUSTOMER_DOMAINS = ("example.com", "example.org", "example.net")
_PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark")
_EMAIL_INBOXES = ("Support", "Billing", "Returns", "Sales")
_CHAT_INBOX = "Live chat"


@dataclass(frozen=True, slots=True)
class _Topic:
    """What a conversation is about: where it belongs, what it is called, how it is tagged."""

    inbox: str
    subjects: tuple[str, ...]
    tags: tuple[str, ...]
    openings: tuple[str, ...]


_TOPICS = (
    _Topic(
        "Billing",
        ("Invoice is wrong", "Charged twice this month", "VAT number missing on my invoice"),
        ("billing", "invoice", "refund"),
        ("Hi, the invoice you sent has the wrong VAT rate.", "I was charged twice this month."),
    ),
    _Topic(
        "Support",
        ("Where is my order?", "Package arrived damaged", "Tracking number does not work"),
        ("shipping", "delivery", "damaged"),
        ("My order was due on Monday and still has not arrived.", "The box arrived crushed."),
    ),
    _Topic(
        "Returns",
        ("Return label please", "Wrong size, can I exchange?", "Refund for my return?"),
        ("returns", "exchange"),
        ("I need to send these shoes back, they are too small.", "Can I get a return label?"),
    ),
    _Topic(
        "Support",
        ("Cannot log in", "Password reset email never arrives", "Please delete my account"),
        ("login", "account", "gdpr"),
        ("The password reset link says it has expired.", "Please delete my account and data."),
    ),
    _Topic(
        "Sales",
        ("Bulk pricing for 50 seats?", "Do you ship to Canada?", "Discount for nonprofits"),
        ("sales", "pricing"),
        ("We would like a quote for 50 seats.", "Do you offer a nonprofit discount?"),
    ),
    _Topic(
        "Support",
        ("App crashes at checkout", "Discount code not applied", "Error 500 on my orders page"),
        ("bug", "checkout"),
        ("The app closes every time I tap Pay.", "My discount code is not applied at checkout."),
    ),
)
_OUTREACH_SUBJECTS = (
    "Your order is delayed",
    "Following up on your refund",
    "Action needed: confirm your shipping address",
)
_STAFF_REPLIES = (
    "Hi {name}, thanks for reaching out: I am looking into this now.",
    "Hi {name}, could you send me your order number?",
    "Hi {name}, I have passed this to our billing team and will update you today.",
    "Hi {name}, sorry about that: a corrected copy is attached.",
    "Hi {name}, could you try again with the link below?",
)
_CLOSING_REPLIES = (
    "Hi {name}, the refund is on its way: it should show within 5 days.",
    "Glad that is sorted, {name}! Anything else, just reply here.",
    "Hi {name}, this is fixed on our side now. Thanks for your patience.",
)
_FOLLOW_UP_REPLIES = (
    "Hi {name}, just following up: did the replacement arrive?",
    "Hi {name}, the refund has now landed on your card.",
)
_CUSTOMER_FOLLOW_UPS = (
    "Thanks! The order number is #{order}.",
    "Still not working, screenshot attached.",
    "Any update on this?",
    "That did it, thank you.",
    "Sorry, one more question about order #{order}.",
)
_CHAT_STAFF_LINES = (
    "Hi {name}, let me check that for you.",
    "One moment please, {name}.",
    "Found it: I have updated your order.",
    "Is there anything else I can help with?",
)
_CHAT_CUSTOMER_LINES = ("hello?", "it's order #{order}", "ok thanks", "great, that works")
_BOT_LINES = (
    "Hi! I am the virtual assistant. Here is an article that may help.",
    "You can track your order from the Orders page.",
)
_NOTES = (
    "Checked with finance: refund approved.",
    "Customer is on the legacy plan, careful with pricing.",
    "Carrier confirmed the parcel is lost.",
    "Duplicate charge is visible in the payment dashboard.",
    "Escalated to engineering, ticket ENG-{order}.",
)
_REMINDER_NOTES = (
    "Check the refund landed",
    "Chase the carrier",
    "Follow up if no reply",
    "Call the customer back",
)
_HOLD_REASONS = ("waiting for finance", "waiting for the carrier", "waiting for engineering")
_SPAM_REASONS = ("phishing", "unsolicited marketing", "bulk mail", None)
_RESOLVE_REASONS = ("answered", "refund issued", "replacement sent", None)
_HANDOVER_REASONS = ("customer asked for a human", "no matching answer", "billing question")
_FAILURE_REASONS = (
    ("Bounced Address", None),
    ("Invalid recipient", "5.1.3"),
    ("Dropped: spam content", None),
)
_BOUNCES = {
    BounceClass.HARD: ("5.1.1", "550 5.1.1 user unknown"),
    BounceClass.SOFT: ("4.2.2", "452 4.2.2 mailbox full"),
    BounceClass.POLICY: ("5.7.1", "550 5.7.1 message refused by policy"),
}
_ATTACHMENTS = ("screenshot.png", "invoice-7781.pdf", "damaged-box.jpg", "receipt.pdf")
# Staff delete these for privacy; ordinary attachments stay.
_SENSITIVE_ATTACHMENTS = ("passport.jpg", "driving-licence.png", "card-statement.pdf")
_BROWSER_USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Mobile Safari/537.36",
)
# Security gateways fetch every image of a delivered mail within seconds; some say
# so in their user agent, some pose as an old desktop browser.
SCANNER_USER_AGENTS = (
    "Mozilla/5.0 (compatible; MailScanner/4.85; +https://www.mailscanner.info)",
    "Mozilla/5.0 (compatible; SafeLinks-Prefetch/1.0)",
    "Mozilla/5.0 (compatible; URLDefense-Scanner/2.3)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/58.0.3029.110 Safari/537.36",
)


@dataclass(frozen=True, slots=True)
class _Workflow:
    id: str
    name: str


_VIP_ROUTING = _Workflow("wf-vip-routing", "VIP routing")
_AUTO_TAG = _Workflow("wf-auto-tag", "Auto-tag by topic")
_ROUND_ROBIN = _Workflow("wf-round-robin", "Round-robin assignment")
_ESCALATE = _Workflow("wf-escalate", "Escalate to tier 2")
_REFUND = _Workflow("wf-refund-request", "Refund request")
_AUTOMATED = (_VIP_ROUTING, _AUTO_TAG, _ROUND_ROBIN)
_SYSTEM = Actor(kind=ActorKind.SYSTEM)


@dataclass(frozen=True, slots=True)
class _Staff:
    ref: StaffRef
    actor: Actor


@dataclass(slots=True)
class _Customer:
    id: str
    first_name: str
    email: str
    actor: Actor
    # Earlier conversations a new duplicate of theirs may be merged into.
    conversation_ids: list[str] = field(default_factory=list)

    @property
    def mail_domain(self) -> str:
        return self.email.rsplit("@", 1)[1]


@dataclass(slots=True)
class _Account:
    id: str
    slug: str
    brand: str
    mail_domain: str
    provider: str
    inboxes: dict[str, InboxRef]
    staff: tuple[_Staff, ...]
    bot: Actor
    rule_ids: dict[str, str]
    customers: list[_Customer] = field(default_factory=list)


@dataclass(slots=True)
class _Conversation:
    """What the simulation knows about one conversation while it lives it."""

    index: int
    id: str
    key: str  # the stem of every id minted for this conversation
    account: _Account
    customer: _Customer
    channel: Channel
    topic: _Topic
    inbox: InboxRef
    subject: str | None
    clock: int  # ms after the origin: when the latest state-changing action happened
    horizon: int = 0  # ms of the latest event of any kind, provider reports and views included
    assignee: _Staff | None = None
    status: ConversationStatus = ConversationStatus.OPEN
    archived: bool = False
    tags: list[str] = field(default_factory=list)
    pinned_notes: list[str] = field(default_factory=list)
    customer_messages: list[str] = field(default_factory=list)
    viewed_messages: set[str] = field(default_factory=set)
    attachments: list[tuple[str, str, str]] = field(default_factory=list)
    reminders: list[tuple[str, int]] = field(default_factory=list)  # (reminder_id, due ms)
    surveyed: bool = False
    minted: int = 0

    def mint(self, prefix: str) -> str:
        self.minted += 1
        return f"{prefix}-{self.key}-{self.minted}"


@dataclass(frozen=True, slots=True)
class _Pace:
    """How long a kind of pause lasts: log-normal around a median, clamped, in seconds."""

    median: float
    low: float
    high: float
    spread: float = 0.9


_MINUTE = 60.0
_HOUR = 3600.0
_DAY = 86400.0
_STAFF_EMAIL_RESPONSE = _Pace(45 * _MINUTE, 2 * _MINUTE, 2 * _DAY)
_CUSTOMER_EMAIL_RESPONSE = _Pace(3 * _HOUR, 5 * _MINUTE, 4 * _DAY)
_STAFF_CHAT_RESPONSE = _Pace(25, 3, 10 * _MINUTE)
_COMPOSE_EMAIL = _Pace(2 * _MINUTE, 15, 30 * _MINUTE)
_COMPOSE_CHAT = _Pace(15, 2, 2 * _MINUTE)
_CUSTOMER_CHAT_RESPONSE = _Pace(35, 4, 5 * _MINUTE)
_BOT_RESPONSE = _Pace(2, 0.5, 6, spread=0.5)
_STAFF_ACTION = _Pace(20, 2, 5 * _MINUTE)
_WRAP_UP = _Pace(4 * _MINUTE, 20, 2 * _HOUR)
_COMES_BACK = _Pace(1 * _DAY, 2 * _HOUR, 10 * _DAY)
_NO_RESPONSE = _Pace(2 * _DAY, 1 * _DAY, 5 * _DAY, spread=0.3)
_PROVIDER_ACCEPTS = _Pace(2, 0.3, 10, spread=0.6)
_SERVER_ACCEPTS = _Pace(4, 0.5, 60, spread=0.8)
_BOUNCE_REPORTED = _Pace(30, 2, 10 * _MINUTE)
_SOFT_BOUNCE_RETRY = _Pace(2 * _HOUR, 20 * _MINUTE, 3 * _DAY)
_SCANNER_FETCH = _Pace(2.5, 0.4, 8, spread=0.6)
_CUSTOMER_OPENS = _Pace(40 * _MINUTE, 30, 2 * _DAY)
_CUSTOMER_REOPENS = _Pace(5 * _HOUR, 5 * _MINUTE, 3 * _DAY)
_COMPLAINT = _Pace(1 * _HOUR, 2 * _MINUTE, 2 * _DAY)
_WIDGET_SEEN = _Pace(4, 0.5, 60)
_REMINDER_DUE = _Pace(90 * _MINUTE, 5 * _MINUTE, 24 * _HOUR, spread=1.0)
_HOLD_FOR = _Pace(1 * _DAY, 4 * _HOUR, 5 * _DAY, spread=0.5)
_SURVEY_DELAY = _Pace(5 * _MINUTE, 30, 30 * _MINUTE)

# Sort key first (ms, conversation index, sequence), then what the event is made of.
_Draft: TypeAlias = tuple[int, int, int, str, str, Actor, Payload, str | None]


def _build_accounts(rng: random.Random, profile: TrafficProfile) -> list[_Account]:
    accounts = []
    for number in range(profile.accounts):
        brand = _BRANDS[number % len(_BRANDS)]
        lap = number // len(_BRANDS)
        slug = brand.lower() + (f"{lap + 1}" if lap else "")
        inboxes = {
            name: InboxRef(id=f"inb-{slug}-{name.lower().replace(' ', '-')}", name=name)
            for name in (*_EMAIL_INBOXES, _CHAT_INBOX)
        }
        accounts.append(
            _Account(
                id=f"acct-{slug}",
                slug=slug,
                brand=brand if not lap else f"{brand} {lap + 1}",
                mail_domain=f"{slug}.example",
                provider=rng.choice(_PROVIDERS),
                inboxes=inboxes,
                staff=_build_staff(rng, slug, profile.staff_per_account),
                bot=Actor(kind=ActorKind.BOT, id=f"bot-{slug}-faq", name=f"{brand} FAQ bot"),
                rule_ids={flow.id: f"rule-{slug}-{n}" for n, flow in enumerate(_AUTOMATED, 1)},
            )
        )
    return accounts


def _build_staff(rng: random.Random, slug: str, size: int) -> tuple[_Staff, ...]:
    names = rng.sample(_STAFF_NAMES, len(_STAFF_NAMES))
    team = []
    for number in range(size):
        first = names[number % len(names)]
        lap = number // len(names)
        suffix = f"-{lap + 1}" if lap else ""
        ref = StaffRef(
            id=f"stf-{slug}-{first.lower()}{suffix}", name=first + (f" {lap + 1}" if lap else "")
        )
        team.append(_Staff(ref=ref, actor=Actor(kind=ActorKind.STAFF, id=ref.id, name=ref.name)))
    return tuple(team)


# --- the simulation ----------------------------------------------------------------------


class _Simulation:
    """Lives conversations one after another, collecting drafts of their events.

    Each activity method emits the events of one kind of action at the
    conversation's clock. Provider reports and views are scheduled ahead of the
    clock without moving it, as they happen on their own while staff work on.
    """

    def __init__(self, seed: int, profile: TrafficProfile, origin: datetime) -> None:
        self.seed = seed
        self.profile = profile
        self.origin = origin
        self.rng = random.Random(seed)
        self.accounts = _build_accounts(self.rng, profile)
        # Tenants differ in size: a few large, a long tail of small ones.
        self.account_weights = list(accumulate(1 / (n + 1) for n in range(len(self.accounts))))
        self.drafts: list[_Draft] = []
        self.sequence = 0
        self.customers = 0

    def run(self, conversations: int) -> None:
        arrival = 0.0
        rate = self.profile.conversations_per_hour / _HOUR
        for index in range(conversations):
            conversation = self.new_conversation(index, int(arrival * 1000))
            if conversation.channel is Channel.CHAT:
                self.chat_life(conversation)
            elif self.chance(self.profile.outreach_share):
                self.outreach_life(conversation)
            else:
                self.email_life(conversation)
            arrival += self.rng.expovariate(rate)

    def events(self) -> list[ConversationEvent]:
        # (ms, conversation, sequence) is unique, so the sort never compares payloads.
        self.drafts.sort()
        events = []
        for number, draft in enumerate(self.drafts, 1):
            at, _, _, conversation_id, account_id, actor, payload, correlation_id = draft
            event = ConversationEvent(
                event_id=f"evt-{self.seed}-{number:07d}",
                conversation_id=conversation_id,
                account_id=account_id,
                type=TYPE_BY_PAYLOAD[type(payload)],
                occurred_at=self.moment(at),
                actor=actor,
                correlation_id=correlation_id,
                payload=payload,
            )
            events.append(event)
        return events

    # --- plumbing

    def emit(
        self,
        conversation: _Conversation,
        actor: Actor,
        payload: Payload,
        at: int | None = None,
        correlation_id: str | None = None,
    ) -> None:
        when = conversation.clock if at is None else at
        self.drafts.append(
            (
                when,
                conversation.index,
                self.sequence,
                conversation.id,
                conversation.account.id,
                actor,
                payload,
                correlation_id,
            )
        )
        self.sequence += 1
        conversation.horizon = max(conversation.horizon, when)

    def moment(self, at: int) -> datetime:
        return self.origin + timedelta(milliseconds=at)

    def pause(self, pace: _Pace) -> int:
        seconds = self.rng.lognormvariate(math.log(pace.median), pace.spread)
        return int(min(max(seconds, pace.low), pace.high) * 1000)

    def wait(self, conversation: _Conversation, pace: _Pace) -> None:
        conversation.clock += self.pause(pace)

    def chance(self, share: float) -> bool:
        return self.rng.random() < share

    def text(self, templates: tuple[str, ...], conversation: _Conversation) -> str:
        return self.rng.choice(templates).format(
            name=conversation.customer.first_name, order=self.rng.randrange(10000, 99999)
        )

    def teammate(self, conversation: _Conversation, other_than: _Staff | None) -> _Staff | None:
        candidates = [s for s in conversation.account.staff if s is not other_than]
        return self.rng.choice(candidates) if candidates else None

    # --- who and what

    def new_conversation(self, index: int, arrival: int) -> _Conversation:
        rng = self.rng
        account = self.accounts[
            bisect(self.account_weights, rng.random() * self.account_weights[-1])
        ]
        customer = self.customer_for(account)
        topic = rng.choice(_TOPICS)
        channel = Channel.CHAT if self.chance(self.profile.chat_share) else Channel.EMAIL
        if channel is Channel.CHAT:
            inbox, subject = account.inboxes[_CHAT_INBOX], None
        else:
            # Many customers write to the general address whatever the topic.
            inbox_name = topic.inbox if self.chance(0.7) else "Support"
            inbox, subject = account.inboxes[inbox_name], rng.choice(topic.subjects)
        key = f"{self.seed}-{index:06d}"
        return _Conversation(
            index=index,
            id=f"cnv-{key}",
            key=key,
            account=account,
            customer=customer,
            channel=channel,
            topic=topic,
            inbox=inbox,
            subject=subject,
            clock=arrival,
            horizon=arrival,
        )

    def customer_for(self, account: _Account) -> _Customer:
        if account.customers and self.chance(self.profile.returning_customer_share):
            return self.rng.choice(account.customers)
        self.customers += 1
        first, last = self.rng.choice(_FIRST_NAMES), self.rng.choice(_LAST_NAMES)
        customer_id = f"cus-{self.seed}-{self.customers:06d}"
        email = f"{first}.{last}{self.customers}@{self.rng.choice(_CUSTOMER_DOMAINS)}".lower()
        actor = Actor(kind=ActorKind.CUSTOMER, id=customer_id, name=f"{first} {last}")
        customer = _Customer(id=customer_id, first_name=first, email=email, actor=actor)
        account.customers.append(customer)
        return customer

    # --- lives

    def email_life(self, conversation: _Conversation) -> None:
        customer = conversation.customer
        self.open_conversation(conversation, customer.actor)
        self.customer_writes(conversation, self.text(conversation.topic.openings, conversation))
        if self.chance(self.profile.spam_share) and self.spam_episode(conversation):
            return
        if self.merge_duplicate(conversation):
            return
        self.route(conversation)
        self.work_cycles(conversation)
        customer.conversation_ids.append(conversation.id)

    def outreach_life(self, conversation: _Conversation) -> None:
        staff = self.rng.choice(conversation.account.staff)
        conversation.subject = self.rng.choice(_OUTREACH_SUBJECTS)
        self.open_conversation(conversation, staff.actor)
        self.reassign(conversation, staff.actor, staff)
        self.wait(conversation, _STAFF_ACTION)
        self.staff_replies(conversation, staff, self.text(_STAFF_REPLIES, conversation))
        if self.chance(0.6):
            self.wait(conversation, _CUSTOMER_EMAIL_RESPONSE)
            self.customer_writes(conversation, self.text(_CUSTOMER_FOLLOW_UPS, conversation))
            self.work_cycles(conversation)
        else:
            self.wait(conversation, _NO_RESPONSE)
            self.resolve(conversation, staff, "no response from customer")
            self.after_resolution(conversation, staff)
        conversation.customer.conversation_ids.append(conversation.id)

    def chat_life(self, conversation: _Conversation) -> None:
        self.open_conversation(conversation, conversation.customer.actor)
        self.customer_writes(conversation, self.text(conversation.topic.openings, conversation))
        if self.chance(self.profile.chatbot_share) and self.chatbot_resolves(conversation):
            conversation.customer.conversation_ids.append(conversation.id)
            return
        if self.merge_duplicate(conversation):
            return
        self.route(conversation)
        exchanges = self.rng.randint(2, 7)
        # An agent accepts the chat, then reads and answers.
        self.wait(conversation, _STAFF_CHAT_RESPONSE)
        staff = self.take(conversation)
        for exchange in range(exchanges):
            if exchange:
                self.wait(conversation, _STAFF_CHAT_RESPONSE)
            staff = self.take(conversation)
            self.staff_reads(conversation, staff)
            staff = self.chat_triage(conversation, staff, exchange)
            self.staff_replies(conversation, staff, self.text(_CHAT_STAFF_LINES, conversation))
            # Some customers leave before the agent is done.
            if exchange == exchanges - 1 or self.chance(0.05):
                break
            self.wait(conversation, _CUSTOMER_CHAT_RESPONSE)
            self.customer_writes(conversation, self.text(_CHAT_CUSTOMER_LINES, conversation))
        # Chats nobody ends are left idle on purpose: the assistant auto-resolves those.
        if self.chance(0.7):
            self.wait(conversation, _STAFF_CHAT_RESPONSE)
            self.emit(conversation, staff.actor, ChatEnded(reason=None))
            if self.chance(0.85):
                self.wait(conversation, _STAFF_ACTION)
                self.resolve(conversation, staff, self.rng.choice(_RESOLVE_REASONS))
                self.after_resolution(conversation, staff)
        conversation.customer.conversation_ids.append(conversation.id)

    def work_cycles(self, conversation: _Conversation) -> None:
        """Work the conversation to a resolution, as many times as it comes back."""
        for _ in range(3):
            staff = self.work_until_done(conversation)
            self.after_resolution(conversation, staff)
            if not self.chance(self.profile.reopen_share) or not self.comes_back(conversation):
                return

    def work_until_done(self, conversation: _Conversation) -> _Staff:
        """Staff turns and customer answers until staff resolve or archive it."""
        for turn in range(1, 7):
            self.wait(conversation, _STAFF_EMAIL_RESPONSE)
            staff = self.take(conversation)
            self.staff_reads(conversation, staff)
            self.cancel_moot_reminders(conversation, staff)
            staff = self.email_triage(conversation, staff, turn)
            finishing = turn == 6 or self.chance(0.25 + 0.15 * turn)
            if finishing and self.chance(0.15):
                self.reply_and_archive(conversation, staff)
                return staff
            replies = _CLOSING_REPLIES if finishing else _STAFF_REPLIES
            self.staff_replies(conversation, staff, self.text(replies, conversation))
            if finishing:
                self.wait(conversation, _STAFF_ACTION)
                self.resolve(conversation, staff, self.rng.choice(_RESOLVE_REASONS))
                return staff
            if self.chance(0.12):
                self.wait(conversation, _STAFF_ACTION)
                self.hold(conversation, staff)
            if not self.chance(0.85):
                self.wait(conversation, _NO_RESPONSE)
                self.resolve(conversation, staff, "no response from customer")
                return staff
            self.wait(conversation, _CUSTOMER_EMAIL_RESPONSE)
            self.customer_writes(conversation, self.text(_CUSTOMER_FOLLOW_UPS, conversation))
        raise AssertionError("the last turn always finishes")  # pragma: no cover

    def comes_back(self, conversation: _Conversation) -> bool:
        """A resolved or archived conversation comes back; False if it is over after all."""
        self.wait(conversation, _COMES_BACK)
        staff = conversation.assignee or self.rng.choice(conversation.account.staff)
        roll = self.rng.random()
        if roll < 0.6:
            self.customer_writes(conversation, self.text(_CUSTOMER_FOLLOW_UPS, conversation))
            self.reopen_for_customer(conversation)
            return True
        if roll < 0.85 and conversation.status is ConversationStatus.RESOLVED:
            self.follow_up_and_reopen(conversation, staff)
            if self.chance(0.6):
                self.wait(conversation, _CUSTOMER_EMAIL_RESPONSE)
                self.customer_writes(conversation, self.text(_CUSTOMER_FOLLOW_UPS, conversation))
                return True
            self.wait(conversation, _NO_RESPONSE)
            self.resolve(conversation, staff, "no response from customer")
            self.after_resolution(conversation, staff)
            return False
        if conversation.archived:
            self.emit(conversation, staff.actor, Unarchived(reason="needs follow-up"))
            conversation.archived = False
        if conversation.status is ConversationStatus.RESOLVED:
            self.wait(conversation, _STAFF_ACTION)
            self.emit(conversation, staff.actor, Reopened(reason="resolved by mistake"))
            conversation.status = ConversationStatus.OPEN
        return True

    # --- activities: the conversation itself

    def open_conversation(self, conversation: _Conversation, actor: Actor) -> None:
        customer = conversation.customer
        # Chat visitors often never give an email address.
        known_email = conversation.channel is Channel.EMAIL or self.chance(0.6)
        self.emit(
            conversation,
            actor,
            ConversationCreated(
                channel=conversation.channel,
                inbox=conversation.inbox,
                brand=conversation.account.brand,
                subject=conversation.subject,
                customer_id=customer.id,
                customer_email=customer.email if known_email else None,
            ),
        )

    def route(self, conversation: _Conversation) -> None:
        """Automated workflows that fire on a new conversation, when the account has one."""
        if not self.chance(0.35):
            return
        flow = _ROUND_ROBIN if conversation.channel is Channel.CHAT else self.rng.choice(_AUTOMATED)
        robot = Actor(
            kind=ActorKind.WORKFLOW,
            id=flow.id,
            name=flow.name,
            rule_id=conversation.account.rule_ids[flow.id],
        )
        correlation_id = conversation.mint("wfr")
        self.wait(conversation, _BOT_RESPONSE)
        ran = WorkflowRan(
            workflow_id=flow.id, workflow_name=flow.name, trigger=WorkflowTrigger.AUTOMATED
        )
        self.emit(conversation, robot, ran, correlation_id=correlation_id)
        if flow is _AUTO_TAG:
            self.tag(conversation, robot, conversation.topic.tags[0], correlation_id)
            return
        if flow is _VIP_ROUTING:
            self.tag(conversation, robot, "vip", correlation_id)
            to = conversation.account.staff[0]  # the team lead takes VIPs
        else:
            to = self.rng.choice(conversation.account.staff)
        self.reassign(conversation, robot, to, correlation_id)

    def run_manual_workflow(self, conversation: _Conversation, staff: _Staff) -> None:
        flow = self.rng.choice((_ESCALATE, _REFUND))
        correlation_id = conversation.mint("wfr")
        ran = WorkflowRan(
            workflow_id=flow.id, workflow_name=flow.name, trigger=WorkflowTrigger.MANUAL
        )
        self.emit(conversation, staff.actor, ran, correlation_id=correlation_id)
        robot = Actor(
            kind=ActorKind.WORKFLOW, id=flow.id, name=flow.name, on_behalf_of=staff.ref.id
        )
        if flow is _REFUND:
            self.tag(conversation, robot, "refund", correlation_id)
            return
        self.tag(conversation, robot, "escalated", correlation_id)
        tier_two = self.teammate(conversation, conversation.assignee)
        if tier_two is not None:
            self.reassign(conversation, robot, tier_two, correlation_id)

    def take(self, conversation: _Conversation) -> _Staff:
        """The assignee, after someone picks the conversation up if nobody had it."""
        if conversation.assignee is None:
            staff = self.rng.choice(conversation.account.staff)
            self.reassign(conversation, staff.actor, staff)
        assert conversation.assignee is not None
        return conversation.assignee

    def reassign(
        self,
        conversation: _Conversation,
        actor: Actor,
        to: _Staff | None,
        correlation_id: str | None = None,
    ) -> None:
        before = conversation.assignee
        if to is before:
            return
        payload = Reassigned(
            from_assignee=None if before is None else before.ref,
            to_assignee=None if to is None else to.ref,
        )
        self.emit(conversation, actor, payload, correlation_id=correlation_id)
        conversation.assignee = to

    def move(self, conversation: _Conversation, staff: _Staff, to: InboxRef) -> None:
        if to.id == conversation.inbox.id:
            return
        self.emit(conversation, staff.actor, Moved(from_inbox=conversation.inbox, to_inbox=to))
        conversation.inbox = to

    def tag(
        self, conversation: _Conversation, actor: Actor, tag: str, correlation_id: str | None = None
    ) -> None:
        if tag in conversation.tags:
            return
        self.emit(conversation, actor, TagAdded(tag=tag), correlation_id=correlation_id)
        conversation.tags.append(tag)

    def untag(self, conversation: _Conversation, staff: _Staff) -> None:
        tag = self.rng.choice(conversation.tags)
        self.emit(conversation, staff.actor, TagRemoved(tag=tag))
        conversation.tags.remove(tag)

    def edit_subject(self, conversation: _Conversation, staff: _Staff) -> None:
        current = conversation.subject
        choices = [s for s in conversation.topic.subjects if s != current]
        to_subject = f"{self.rng.choice(choices)} (order #{self.rng.randrange(10000, 99999)})"
        self.emit(
            conversation, staff.actor, SubjectEdited(from_subject=current, to_subject=to_subject)
        )
        conversation.subject = to_subject

    def hold(self, conversation: _Conversation, staff: _Staff) -> None:
        until = self.moment(conversation.clock + self.pause(_HOLD_FOR))
        reason = self.rng.choice(_HOLD_REASONS)
        self.emit(conversation, staff.actor, PutOnHold(until=until, reason=reason))
        conversation.status = ConversationStatus.ON_HOLD

    def resolve(self, conversation: _Conversation, staff: _Staff, reason: str | None) -> None:
        self.emit(conversation, staff.actor, Resolved(reason=reason))
        conversation.status = ConversationStatus.RESOLVED

    def after_resolution(self, conversation: _Conversation, staff: _Staff) -> None:
        """Tidying up once it is done: the survey, reminders and pins, the archive."""
        self.cancel_moot_reminders(conversation, staff, share=0.6)
        if (
            conversation.status is ConversationStatus.RESOLVED
            and not conversation.surveyed
            and self.chance(self.profile.csat_share)
        ):
            self.survey(conversation)
        for note_id in list(conversation.pinned_notes):
            if self.chance(0.4):
                self.wait(conversation, _STAFF_ACTION)
                self.emit(conversation, staff.actor, NoteUnpinned(note_id=note_id))
                conversation.pinned_notes.remove(note_id)
        if not conversation.archived and self.chance(0.3):
            self.wait(conversation, _WRAP_UP)
            self.emit(conversation, staff.actor, Archived(reason=None))
            conversation.archived = True
        if conversation.assignee is not None and self.chance(0.03):
            self.wait(conversation, _STAFF_ACTION)
            self.reassign(conversation, staff.actor, None)  # back to the team queue

    def survey(self, conversation: _Conversation) -> None:
        at = conversation.clock + self.pause(_SURVEY_DELAY)
        # The survey travels in a message of its own.
        survey_id, message_id = conversation.mint("csat"), conversation.mint("msg")
        payload = CsatSurveySent(survey_id=survey_id, message_id=message_id)
        self.emit(conversation, _SYSTEM, payload, at=at)
        conversation.surveyed = True

    def reopen_for_customer(self, conversation: _Conversation) -> None:
        """The platform brings a conversation back when its customer writes again."""
        if conversation.archived:
            self.emit(conversation, _SYSTEM, Unarchived(reason="customer replied"))
            conversation.archived = False
        if conversation.status is ConversationStatus.RESOLVED:
            self.emit(conversation, _SYSTEM, Reopened(reason="customer replied"))
        conversation.status = ConversationStatus.OPEN

    def reply_and_archive(self, conversation: _Conversation, staff: _Staff) -> None:
        correlation_id = conversation.mint("act")
        text = self.text(_CLOSING_REPLIES, conversation)
        message_id = self.staff_replies(conversation, staff, text, correlation_id)
        self.emit(
            conversation,
            staff.actor,
            RepliedAndArchived(message_id=message_id),
            correlation_id=correlation_id,
        )
        conversation.archived = True

    def follow_up_and_reopen(self, conversation: _Conversation, staff: _Staff) -> None:
        if conversation.archived:
            self.emit(conversation, staff.actor, Unarchived(reason="follow-up"))
            conversation.archived = False
        correlation_id = conversation.mint("act")
        text = self.text(_FOLLOW_UP_REPLIES, conversation)
        message_id = self.staff_replies(conversation, staff, text, correlation_id)
        self.emit(
            conversation,
            staff.actor,
            RepliedAndReopened(message_id=message_id),
            correlation_id=correlation_id,
        )
        conversation.status = ConversationStatus.OPEN

    def spam_episode(self, conversation: _Conversation) -> bool:
        """Staff mark it as spam; True unless it turns out to be a real customer."""
        self.wait(conversation, _STAFF_EMAIL_RESPONSE)
        staff = self.rng.choice(conversation.account.staff)
        self.emit(conversation, staff.actor, MarkedSpam(reason=self.rng.choice(_SPAM_REASONS)))
        if not self.chance(0.25):
            return True
        self.wait(conversation, _STAFF_EMAIL_RESPONSE)
        other = self.teammate(conversation, staff) or staff
        self.emit(conversation, other.actor, UnmarkedSpam(reason="real customer"))
        return False

    def merge_duplicate(self, conversation: _Conversation) -> bool:
        """A returning customer wrote again about the same thing: fold it into the earlier one."""
        earlier = conversation.customer.conversation_ids
        if not earlier or not self.chance(self.profile.duplicate_merge_share):
            return False
        chat = conversation.channel is Channel.CHAT
        self.wait(conversation, _STAFF_CHAT_RESPONSE if chat else _STAFF_EMAIL_RESPONSE)
        staff = self.rng.choice(conversation.account.staff)
        self.staff_reads(conversation, staff)
        self.wait(conversation, _STAFF_ACTION)
        # Nothing of the source may come after the merge, not even a late view.
        conversation.clock = max(conversation.clock, conversation.horizon)
        self.emit(conversation, staff.actor, Merged(into_conversation_id=earlier[-1]))
        return True

    def chatbot_resolves(self, conversation: _Conversation) -> bool:
        """The chatbot answers first; True if that was enough, False once it hands over."""
        bot = conversation.account.bot
        assert bot.id is not None and bot.name is not None
        self.wait(conversation, _BOT_RESPONSE)
        self.bot_replies(conversation, bot, self.rng.choice(_BOT_LINES))
        self.wait(conversation, _CUSTOMER_CHAT_RESPONSE)
        self.customer_writes(conversation, self.text(_CHAT_CUSTOMER_LINES, conversation))
        self.wait(conversation, _BOT_RESPONSE)
        if self.chance(0.35):
            self.bot_replies(conversation, bot, self.rng.choice(_BOT_LINES))
            self.wait(conversation, _CUSTOMER_CHAT_RESPONSE)
            self.emit(conversation, bot, ChatbotResolved(bot_id=bot.id, bot_name=bot.name))
            if self.chance(self.profile.csat_share * 0.6):
                self.survey(conversation)
            return True
        handover = ChatbotHandedOver(
            bot_id=bot.id,
            bot_name=bot.name,
            to_inbox=conversation.inbox,
            reason=self.rng.choice(_HANDOVER_REASONS),
        )
        self.emit(conversation, bot, handover)
        return False

    # --- activities: triage

    def email_triage(self, conversation: _Conversation, staff: _Staff, turn: int) -> _Staff:
        """What staff do before replying; returns who replies (a reassignment changes it)."""
        account, first = conversation.account, turn == 1
        if first and conversation.inbox.name != conversation.topic.inbox and self.chance(0.7):
            self.act(conversation)
            self.move(conversation, staff, account.inboxes[conversation.topic.inbox])
        elif self.chance(0.03):
            self.act(conversation)
            self.move(conversation, staff, account.inboxes[self.rng.choice(_EMAIL_INBOXES)])
        if self.chance(0.6 if first else 0.12):
            self.act(conversation)
            self.tag(conversation, staff.actor, self.rng.choice(conversation.topic.tags))
        elif conversation.tags and self.chance(0.08):
            self.act(conversation)
            self.untag(conversation, staff)
        if self.chance(0.08 if first else 0.02):
            self.act(conversation)
            self.edit_subject(conversation, staff)
        self.maybe_housekeep(conversation, staff)
        if self.chance(0.05):
            self.act(conversation)
            self.run_manual_workflow(conversation, staff)
        return self.maybe_hand_off(conversation, staff, 0.1)

    def chat_triage(self, conversation: _Conversation, staff: _Staff, exchange: int) -> _Staff:
        if self.chance(0.4 if exchange == 0 else 0.05):
            self.act(conversation)
            self.tag(conversation, staff.actor, self.rng.choice(conversation.topic.tags))
        if exchange == 0 and self.chance(0.05):
            self.act(conversation)
            self.edit_subject(conversation, staff)
        self.maybe_housekeep(conversation, staff)
        return self.maybe_hand_off(conversation, staff, 0.04)

    def maybe_housekeep(self, conversation: _Conversation, staff: _Staff) -> None:
        """Notes, pins, reminders and privacy clean-up, on either channel."""
        if self.chance(0.15):
            self.act(conversation)
            self.add_note(conversation, staff)
        if conversation.pinned_notes and self.chance(0.1):
            self.act(conversation)
            note_id = conversation.pinned_notes.pop(0)
            self.emit(conversation, staff.actor, NoteUnpinned(note_id=note_id))
        sensitive = [a for a in conversation.attachments if a[1] in _SENSITIVE_ATTACHMENTS]
        if sensitive and self.chance(0.6):
            self.act(conversation)
            self.delete_attachment(conversation, staff, sensitive[0])
        if self.chance(0.06):
            self.act(conversation)
            self.add_reminder(conversation, staff)

    def maybe_hand_off(self, conversation: _Conversation, staff: _Staff, share: float) -> _Staff:
        if not self.chance(share):
            return staff
        to = self.teammate(conversation, staff)
        if to is None:
            return staff
        self.act(conversation)
        self.reassign(conversation, staff.actor, to)
        # The new assignee reads up before answering.
        self.wait(conversation, _STAFF_ACTION)
        self.staff_reads(conversation, to, again=True)
        return to

    def act(self, conversation: _Conversation) -> None:
        self.wait(conversation, _STAFF_ACTION)

    def add_note(self, conversation: _Conversation, staff: _Staff) -> None:
        note_id = conversation.mint("msg")
        note = MessageAdded(
            message_id=note_id,
            direction=MessageDirection.OUTBOUND,
            visibility=MessageVisibility.NOTE,
            channel=conversation.channel,
            preview=self.text(_NOTES, conversation),
        )
        self.emit(conversation, staff.actor, note)
        if self.chance(0.3):
            self.act(conversation)
            self.emit(conversation, staff.actor, NotePinned(note_id=note_id))
            conversation.pinned_notes.append(note_id)

    def delete_attachment(
        self, conversation: _Conversation, staff: _Staff, attachment: tuple[str, str, str]
    ) -> None:
        attachment_id, file_name, message_id = attachment
        payload = AttachmentDeleted(
            attachment_id=attachment_id, file_name=file_name, message_id=message_id
        )
        self.emit(conversation, staff.actor, payload)
        conversation.attachments.remove(attachment)

    def add_reminder(self, conversation: _Conversation, staff: _Staff) -> None:
        reminder_id = conversation.mint("rem")
        due = conversation.clock + self.pause(_REMINDER_DUE)
        for_staff = conversation.assignee or staff
        reminder = ReminderAdded(
            reminder_id=reminder_id,
            due_at=self.moment(due),
            for_staff=for_staff.ref,
            note=self.rng.choice(_REMINDER_NOTES),
        )
        self.emit(conversation, staff.actor, reminder)
        conversation.reminders.append((reminder_id, due))

    def cancel_moot_reminders(
        self, conversation: _Conversation, staff: _Staff, share: float = 0.4
    ) -> None:
        """Reminders still pending when staff get back to it are sometimes no longer needed."""
        still_pending = []
        for reminder_id, due in conversation.reminders:
            if due <= conversation.clock:
                continue  # it has fired: nothing left to cancel
            if not self.chance(share):
                still_pending.append((reminder_id, due))
                continue
            self.act(conversation)
            if due > conversation.clock:
                self.emit(conversation, staff.actor, ReminderCancelled(reminder_id=reminder_id))
        conversation.reminders = still_pending

    # --- activities: messages, deliveries and views

    def customer_writes(self, conversation: _Conversation, preview: str) -> None:
        customer, account = conversation.customer, conversation.account
        message_id = conversation.mint("msg")
        email = conversation.channel is Channel.EMAIL
        message = MessageAdded(
            message_id=message_id,
            direction=MessageDirection.INBOUND,
            visibility=MessageVisibility.REPLY,
            channel=conversation.channel,
            recipients=(f"{conversation.inbox.name.lower()}@{account.mail_domain}",)
            if email
            else (),
            email_message_id=(
                f"<{self.rng.getrandbits(64):016x}@mail.{customer.mail_domain}>" if email else None
            ),
            preview=preview,
        )
        self.emit(conversation, customer.actor, message)
        conversation.customer_messages.append(message_id)
        if conversation.status is ConversationStatus.ON_HOLD:
            conversation.status = ConversationStatus.OPEN
        if self.chance(0.12):
            files = _SENSITIVE_ATTACHMENTS if self.chance(0.15) else _ATTACHMENTS
            attachment = (conversation.mint("att"), self.rng.choice(files), message_id)
            conversation.attachments.append(attachment)

    def staff_reads(self, conversation: _Conversation, staff: _Staff, again: bool = False) -> None:
        """Staff open the latest customer message (what the "Viewed" indicator shows)."""
        if not conversation.customer_messages:
            return
        message_id = conversation.customer_messages[-1]
        if message_id in conversation.viewed_messages and not again:
            return
        if not self.chance(0.85):
            return
        view = MessageViewed(
            message_id=message_id,
            viewer_kind=ViewerKind.STAFF,
            viewer_id=staff.ref.id,
            source=ViewSource.APP,
            user_agent=self.rng.choice(_BROWSER_USER_AGENTS[1:3]),
        )
        self.emit(conversation, staff.actor, view)
        conversation.viewed_messages.add(message_id)

    def staff_replies(
        self,
        conversation: _Conversation,
        staff: _Staff,
        preview: str,
        correlation_id: str | None = None,
    ) -> str:
        email = conversation.channel is Channel.EMAIL
        self.wait(conversation, _COMPOSE_EMAIL if email else _COMPOSE_CHAT)
        message_id = conversation.mint("msg")
        recipients: tuple[str, ...] = ()
        if email:
            recipients = (conversation.customer.email,)
            if self.chance(0.06):
                colleague = self.rng.choice(_FIRST_NAMES).lower()
                recipients += (f"{colleague}@{conversation.customer.mail_domain}",)
        reply = MessageAdded(
            message_id=message_id,
            direction=MessageDirection.OUTBOUND,
            visibility=MessageVisibility.REPLY,
            channel=conversation.channel,
            recipients=recipients,
            email_message_id=(
                f"<{message_id}@mail.{conversation.account.mail_domain}>" if email else None
            ),
            preview=preview,
        )
        self.emit(conversation, staff.actor, reply, correlation_id=correlation_id)
        if email:
            for number, recipient in enumerate(recipients):
                self.deliver(conversation, message_id, recipient, to_customer=number == 0)
        else:
            self.seen_in_widget(conversation, message_id)
        return message_id

    def bot_replies(self, conversation: _Conversation, bot: Actor, preview: str) -> None:
        message_id = conversation.mint("msg")
        reply = MessageAdded(
            message_id=message_id,
            direction=MessageDirection.OUTBOUND,
            visibility=MessageVisibility.REPLY,
            channel=conversation.channel,
            preview=preview,
        )
        self.emit(conversation, bot, reply)
        self.seen_in_widget(conversation, message_id)

    def seen_in_widget(self, conversation: _Conversation, message_id: str) -> None:
        if self.chance(0.9):
            at = conversation.clock + self.pause(_WIDGET_SEEN)
            self.customer_views(conversation, message_id, at, ViewSource.CHAT_WIDGET)

    def deliver(
        self, conversation: _Conversation, message_id: str, recipient: str, to_customer: bool
    ) -> None:
        """What the provider reports about one recipient of an email reply, and who opens it."""
        provider = conversation.account.provider
        sent_at = conversation.clock + self.pause(_PROVIDER_ACCEPTS)
        sent = MessageSent(
            message_id=message_id,
            recipient=recipient,
            provider=provider,
            provider_message_id=_uuid(self.rng),
        )
        self.emit(conversation, _SYSTEM, sent, at=sent_at)
        roll = self.rng.random()
        failure, bounce = self.profile.delivery_failure_share, self.profile.bounce_share
        if roll < failure:
            reason, smtp_status = self.rng.choice(_FAILURE_REASONS)
            failed = DeliveryFailed(
                message_id=message_id,
                recipient=recipient,
                provider=provider,
                reason=reason,
                smtp_status=smtp_status,
            )
            self.emit(conversation, _SYSTEM, failed, at=sent_at + self.pause(_BOUNCE_REPORTED))
            return
        delivered_at = sent_at + self.pause(_SERVER_ACCEPTS)
        if roll < failure + bounce:
            bounce_class = self.rng.choices(tuple(_BOUNCES), weights=(5, 4, 1))[0]
            smtp_status, diagnostic = _BOUNCES[bounce_class]
            bounced = BounceDetected(
                message_id=message_id,
                recipient=recipient,
                provider=provider,
                bounce_class=bounce_class,
                smtp_status=smtp_status,
                diagnostic=diagnostic,
            )
            bounced_at = sent_at + self.pause(_BOUNCE_REPORTED)
            self.emit(conversation, _SYSTEM, bounced, at=bounced_at)
            # A full mailbox is often emptied: the provider's retry then gets through.
            if bounce_class is not BounceClass.SOFT or not self.chance(0.5):
                return
            delivered_at = bounced_at + self.pause(_SOFT_BOUNCE_RETRY)
        delivered = MessageDelivered(message_id=message_id, recipient=recipient, provider=provider)
        self.emit(conversation, _SYSTEM, delivered, at=delivered_at)
        if not to_customer:
            return
        if self.chance(self.profile.complaint_share):
            complaint = CustomerMarkedSpam(
                message_id=message_id, recipient=recipient, provider=provider
            )
            self.emit(conversation, _SYSTEM, complaint, at=delivered_at + self.pause(_COMPLAINT))
            return
        self.customer_opens(conversation, message_id, delivered_at)

    def customer_opens(
        self, conversation: _Conversation, message_id: str, delivered_at: int
    ) -> None:
        if self.chance(self.profile.scanner_share):
            at = delivered_at + self.pause(_SCANNER_FETCH)
            agent = self.rng.choice(SCANNER_USER_AGENTS)
            self.customer_views(conversation, message_id, at, ViewSource.TRACKING_PIXEL, agent)
        if not self.chance(0.65):
            return
        at = delivered_at + self.pause(_CUSTOMER_OPENS)
        agent = self.rng.choice(_BROWSER_USER_AGENTS)
        self.customer_views(conversation, message_id, at, ViewSource.TRACKING_PIXEL, agent)
        if self.chance(0.2):
            at += self.pause(_CUSTOMER_REOPENS)
            self.customer_views(conversation, message_id, at, ViewSource.TRACKING_PIXEL, agent)

    def customer_views(
        self,
        conversation: _Conversation,
        message_id: str,
        at: int,
        source: ViewSource,
        user_agent: str | None = None,
    ) -> None:
        customer = conversation.customer
        view = MessageViewed(
            message_id=message_id,
            viewer_kind=ViewerKind.CUSTOMER,
            viewer_id=customer.id,
            source=source,
            user_agent=user_agent or self.rng.choice(_BROWSER_USER_AGENTS),
        )
        self.emit(conversation, customer.actor, view, at=at)


def _uuid(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
