"""Scores the bounce-email parser on the sisimai corpus (tests/fixtures/bounces-sisimai/).

Every email goes through `dsn.split` and `dsn.parse`, exactly as the bounce worker
calls them. What is measured, per email group:

- bounce: each expected recipient is *found* when some notification names it; each
  reported recipient is *precise* when the reference names it; a found recipient's
  class *agrees* when the notification's label (DELIVERED for a delivery, else its
  bounce class: HARD, SOFT, POLICY, UNKNOWN) is one the reference accepts.
- feedback (ARF): the complained-of recipient comes back as COMPLAINED.
- vacation (RFC 3834 auto-replies) and not-a-bounce: nothing is reported as a bounce.

Refusals (NotificationError) are counted by reason; any other exception is a crash.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from processors.delivery.notification import Notification, NotificationError, NotificationKind
from processors.delivery.providers import dsn

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "bounces-sisimai"
BOUNCE_CLASSES = ("hard", "soft", "policy", "soft|policy", "undetermined", "delivered")


def label(notification: Notification) -> str:
    if notification.kind is NotificationKind.DELIVERED:
        return "DELIVERED"
    if notification.kind is NotificationKind.COMPLAINED:
        return "COMPLAINED"
    return notification.bounce_class.value if notification.bounce_class else "UNKNOWN"


@dataclass
class Tally:
    emails: int = 0
    expected: int = 0
    found: int = 0
    reported: int = 0
    precise: int = 0
    judged: int = 0  # found recipients whose reference accepts some class
    agreed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)  # 'file: recipient (why)'

    def add(self, other: Tally) -> None:
        for name in ("emails", "expected", "found", "reported", "precise", "judged", "agreed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.refused.update(other.refused)
        self.crashes.extend(other.crashes)
        self.misses.extend(other.misses)

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        return self.precise / self.reported if self.reported else 1.0

    @property
    def agreement(self) -> float:
        return self.agreed / self.judged if self.judged else 1.0


@dataclass
class Score:
    bounces: Tally = field(default_factory=Tally)  # the bounce group, all families
    families: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    feedback_found: int = 0
    feedback_expected: int = 0
    feedback_ignored: int = 0  # auth-failure reports, ignored on purpose
    wrongly_reported: list[str] = field(default_factory=list)  # vacation / not-a-bounce

    def table(self) -> str:
        lines = [
            "| family | emails | recipients | found | precision | class agrees | refused |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = sorted(self.families.items(), key=lambda kv: (-kv[1].expected, kv[0]))
        for name, t in [*rows, ("**all bounces**", self.bounces)]:
            refused = ", ".join(f"{n} {r}" for r, n in t.refused.most_common()) or ""
            lines.append(
                f"| {name} | {t.emails} | {t.expected} | {t.found} ({t.recall:.0%}) | "
                f"{t.precise}/{t.reported} ({t.precision:.0%}) | "
                f"{t.agreed}/{t.judged} ({t.agreement:.0%}) | {refused} |"
            )
        return "\n".join(lines)


def read(path: Path) -> tuple[list[Notification], str | None]:
    """The notifications of one email, and the refusal reason if a unit was refused."""
    body = path.read_bytes()
    notifications: list[Notification] = []
    refused = None
    for unit in dsn.split(body):
        try:
            notifications.extend(dsn.parse(unit))
        except NotificationError as exc:
            refused = exc.reason
    return notifications, refused


def cases(corpus: Path = CORPUS) -> list[dict]:  # type: ignore[type-arg]
    return list(json.loads((corpus / "cases.json").read_text())["cases"])


def score(corpus: Path = CORPUS) -> Score:
    result = Score()
    for case in cases(corpus):
        path = corpus / case["file"]
        try:
            notifications, refused = read(path)
        except Exception as exc:  # a crash is what this measures
            notifications, refused = [], None
            crash = f"{case['file']}: {type(exc).__name__}: {exc}"
        else:
            crash = None
        by_recipient: dict[str, list[Notification]] = defaultdict(list)
        for n in notifications:
            by_recipient[n.recipient.lower()].append(n)
        group = case["group"]
        if group == "feedback":
            if refused == "auth-failure-report":
                # Deliberately not a complaint (docs/delivery.md): RFC 6591 reports are
                # about the sender's authentication; the report's own Feedback-Type says so.
                assert b"auth-failure" in path.read_bytes().lower()
                result.feedback_ignored += len(case["expected"])
                result.feedback_expected += len(case["expected"])
                continue
            for expected in case["expected"]:
                result.feedback_expected += 1
                wanted = expected["recipient"].lower()
                # sisimai names the recipient of a report that redacts it with a stand-in
                # in the reserved .invalid TLD (RFC 2606); the parser's answer is a
                # complaint naming nobody, which the message's route resolves
                # (processors/delivery/facts.py).
                got = by_recipient.get("" if wanted.endswith(".invalid") else wanted, [])
                if any(n.kind is NotificationKind.COMPLAINED for n in got):
                    result.feedback_found += 1
            continue
        if group != "bounce":
            bounced = [n for n in notifications if n.kind is not NotificationKind.DELIVERED]
            if bounced:
                result.wrongly_reported.append(
                    f"{case['file']}: {', '.join(f'{n.recipient} {label(n)}' for n in bounced)}"
                )
            continue
        t = Tally(emails=1)
        if crash:
            t.crashes.append(crash)
        if refused and not notifications:
            t.refused[refused] += 1
        wanted = {e["recipient"].lower(): e for e in case["expected"] if e["recipient"]}
        # A reference without a recipient (sisimai found none either) judges no report.
        unknown = any(not e["recipient"] for e in case["expected"])
        judged = [r for r in by_recipient if r in wanted or not unknown]
        t.expected = len(wanted)
        t.reported = len(judged)
        t.precise = sum(1 for r in judged if r in wanted)
        for recipient, expected in wanted.items():
            got = by_recipient.get(recipient)
            if not got:
                why = f"refused: {refused}" if refused else "not reported"
                t.misses.append(f"{case['file']}: {recipient} ({why})")
                continue
            t.found += 1
            if expected["accept"]:
                t.judged += 1
                labels = {label(n) for n in got}
                if labels & set(expected["accept"]):
                    t.agreed += 1
                else:
                    t.misses.append(
                        f"{case['file']}: {recipient} class {'/'.join(sorted(labels))}, "
                        f"reference {expected['class']} ({expected['reason']}, "
                        f"{expected['status'] or '-'})"
                    )
        for recipient in judged:
            if recipient not in wanted:
                t.misses.append(f"{case['file']}: {recipient} reported, not a failed recipient")
        result.families[case["family"]].add(t)
        result.bounces.add(t)
    return result


if __name__ == "__main__":  # python -m tests.support.bounce_corpus: the table and misses
    s = score()
    print(s.table())
    print(
        f"feedback: {s.feedback_found}/{s.feedback_expected} complaints found, "
        f"{s.feedback_ignored} auth-failure reports ignored"
    )
    print(f"vacation / not-a-bounce reported as bounces: {s.wrongly_reported}")
    print(f"crashes: {s.bounces.crashes}")
    print("\n".join(s.bounces.misses))
