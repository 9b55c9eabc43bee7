"""The bounce-email parser scored on real mail from about 70 mail-server families
(tests/fixtures/bounces-sisimai/, sisimai's set-of-emails, development half), through
the same `split` and `parse` calls the bounce worker uses. On failure the per-family
table (also in docs/delivery.md) and every miss are printed."""

from __future__ import annotations

import pytest

from tests.support.bounce_corpus import Score, score


@pytest.fixture(scope="module")
def result() -> Score:
    return score()


def _report(result: Score) -> str:
    return "\n" + result.table() + "\n\nmisses:\n" + "\n".join(result.bounces.misses)


def test_no_email_crashes_the_parser(result: Score) -> None:
    assert result.bounces.emails >= 250
    assert result.bounces.crashes == []


def test_recipients_found(result: Score) -> None:
    assert result.bounces.recall >= 0.95, _report(result)


def test_precision(result: Score) -> None:
    assert result.bounces.precision >= 0.97, _report(result)


def test_class_agrees_with_the_reference(result: Score) -> None:
    assert result.bounces.agreement >= 0.90, _report(result)


def test_feedback_reports_are_complaints(result: Score) -> None:
    assert result.feedback_expected >= 5
    # auth-failure reports (RFC 6591) are ignored on purpose: not the recipient's wish.
    assert result.feedback_found + result.feedback_ignored == result.feedback_expected


def test_auto_replies_and_ordinary_mail_are_not_bounces(result: Score) -> None:
    assert result.wrongly_reported == []


def test_the_table_in_docs_is_the_one_measured(result: Score) -> None:
    """docs/delivery.md shows the corpus table between its markers; it must be today's."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "delivery.md").read_text()
    assert result.table() in doc, "regenerate the table: python -m tests.support.bounce_corpus"
