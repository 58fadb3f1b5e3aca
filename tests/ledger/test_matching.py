"""Auto-match and matching by hand, the reconciliation report, and closing a month only once reconciled."""

from __future__ import annotations

import datetime

import pytest

from accounts.roles import Role
from ledger import matching, reconciliation, services
from ledger.exceptions import PeriodClosed
from ledger.models import AccountKind, ClosedPeriod, Match, MatchedTransfer, StatementLine
from ledger.statements_import import statement_import
from tests.factories import user_with_role
from tests.ledger.helpers import open_account, post
from tests.ledger.recon_helpers import bank, golden

pytestmark = pytest.mark.django_db
OCT = datetime.date(2026, 10, 1)


def day(n: int) -> datetime.date:
    return OCT.replace(day=n)


@pytest.fixture
def books():
    """October as the ledger saw it: funding in, a BACS run of two payments out (one bank line), no bank fee yet."""
    cash = bank(date_window_days=3)
    funding = open_account("recon:funding", AccountKind.EQUITY)
    payable = open_account("recon:payable", AccountKind.LIABILITY)
    charges = open_account("recon:charges", AccountKind.EXPENSE)
    post(cash.account, funding, 500_000, "allocation", reference="FUND-OCT", effective_date=day(1))
    post(payable, cash.account, 100_000, "payment", reference="payrun:12", effective_date=day(4))
    post(payable, cash.account, 23_456, "payment", reference="payrun:12", effective_date=day(4))
    return cash, charges


@pytest.fixture
def officer():
    return user_with_role(Role.FINANCE_OFFICER)


def import_ofx(cash, officer):
    statement_import(cash_account=cash, filename="oct.ofx", data=golden("ofx_v1.ofx"), acting_user=officer)


def test_auto_match_by_reference_and_as_a_group_recording_that_it_was_automatic(books, officer):
    cash, _charges = books
    import_ofx(cash, officer)
    assert matching.auto_match(cash) == {"reference": 1, "group": 1, "amount_date": 0}
    bacs = Match.objects.get(rule="group")
    assert bacs.automatic and bacs.matched_by is None
    assert bacs.links.count() == 2 and bacs.line.amount == -123_456
    assert [line.description for line in matching.unmatched_lines(cash)] == ["ACCOUNT FEE"]
    assert matching.unmatched_transfers(cash) == []
    assert matching.auto_match(cash) == {"reference": 0, "group": 0, "amount_date": 0}


def test_amount_and_date_match_only_when_there_is_no_doubt(officer):
    cash = bank(date_window_days=2)
    other = open_account("recon:other", AccountKind.EQUITY)
    post(cash.account, other, 1_000, effective_date=day(10))
    post(cash.account, other, 2_000, effective_date=day(10))
    post(cash.account, other, 2_000, effective_date=day(11))
    post(cash.account, other, 3_000, effective_date=day(1))
    data = b"Date,Narrative,Reference,Amount\n2026-10-12,A,,10.00\n2026-10-12,B,,20.00\n2026-10-12,C,,30.00\n"
    from tests.ledger.recon_helpers import mapping_for

    statement_import(
        cash_account=cash, filename="x.csv", data=data, acting_user=officer, mapping=mapping_for("hsbc.csv")
    )
    assert matching.auto_match(cash) == {"reference": 0, "group": 0, "amount_date": 1}
    assert sorted(line.description for line in matching.unmatched_lines(cash)) == ["B", "C"]
    line_b = matching.unmatched_lines(cash).get(description="B")
    ranked = matching.suggestions(line_b)
    assert [c.amount for c, _score in ranked[:2]] == [2_000, 2_000]
    assert ranked[0][0].date == day(11)  # the nearer date ranks first


def test_match_by_hand_records_who_and_unmatch_frees_both_sides(books, officer):
    cash, _charges = books
    import_ofx(cash, officer)
    line = StatementLine.objects.get(amount=-123_456)
    ids = [c.id for c in matching.unmatched_transfers(cash) if c.amount < 0]
    with pytest.raises(matching.MatchError, match=r"add up to -1,000\.00"):
        matching.match_by_hand(line=line, transfer_ids=ids[:1], acting_user=officer)
    match = matching.match_by_hand(line=line, transfer_ids=ids, acting_user=officer)
    assert not match.automatic and match.matched_by == officer
    with pytest.raises(matching.MatchError, match="already matched"):
        matching.match_by_hand(line=line, transfer_ids=ids, acting_user=officer)
    matching.unmatch(match=match, acting_user=officer)
    match.refresh_from_db()
    assert not match.active and match.unmatched_by == officer and match.unmatched_at
    assert MatchedTransfer.objects.filter(active=True).count() == 0
    assert {c.id for c in matching.unmatched_transfers(cash)} >= set(ids)
    again = matching.match_by_hand(line=line, transfer_ids=ids, acting_user=officer)
    assert again.active and Match.objects.count() == 2  # the undone match stays on record
    # The history (statement-level triggers, so bulk auto-matches stay fast): both matches made, one undone.
    events = Match.pgh_event_model.objects.filter(pgh_obj_id__in=[match.pk, again.pk])
    assert sorted(events.values_list("pgh_label", flat=True)) == ["insert", "insert", "update"]
    assert MatchedTransfer.pgh_event_model.objects.filter(pgh_label="insert").count() == 2 * len(ids)


def test_the_missing_bank_charge_is_created_from_the_line_with_a_reason(books, officer):
    cash, charges = books
    import_ofx(cash, officer)
    line = StatementLine.objects.get(amount=-750)
    with pytest.raises(matching.MatchError, match="Enter why"):
        matching.transfer_from_line(
            line=line, other_account_id=charges.pk, code="bank_charge", reason=" ", acting_user=officer
        )
    match = matching.transfer_from_line(
        line=line, other_account_id=charges.pk, code="bank_charge", reason="October account fee", acting_user=officer
    )
    transfer = match.links.get().transfer
    assert (transfer.debit_account_id, transfer.credit_account_id, transfer.amount) == (
        charges.pk,
        cash.account_id,
        750,
    )
    assert transfer.description == "October account fee" and transfer.acting_user == officer


def test_the_report_explains_every_difference_line_by_line(books, officer):
    cash, charges = books
    import_ofx(cash, officer)
    before = reconciliation.report(cash, day(31))
    assert before.statement_balance == 375_794 and before.ledger_balance == 376_544
    assert before.difference == before.explained == -750
    assert len(before.statement_only) == 3 and len(before.ledger_only) == 3 and not before.reconciled
    matching.auto_match(cash)
    middle = reconciliation.report(cash, day(31))
    assert [(i.amount, i.age_days) for i in middle.statement_only] == [(-750, 0)]
    assert middle.ledger_only == [] and middle.difference == middle.explained
    # As at the 4th the BACS payments are in the ledger but not yet on the statement.
    early = reconciliation.report(cash, day(4))
    assert sorted(i.amount for i in early.ledger_only) == [-100_000, -23_456]
    assert early.difference == early.explained == 123_456
    matching.transfer_from_line(
        line=StatementLine.objects.get(amount=-750),
        other_account_id=charges.pk,
        code="bank_charge",
        reason="fee",
        acting_user=officer,
    )
    assert reconciliation.report(cash, day(31)).reconciled


def test_a_transfer_and_its_reversal_that_the_statement_never_showed_cancel_out(books, officer):
    cash, charges = books
    import_ofx(cash, officer)
    matching.auto_match(cash)
    mistaken = post(cash.account, charges, 750, "refund", reference="never sent", effective_date=day(10))
    assert [item.id for item in reconciliation.report(cash, day(31)).ledger_only] == [mistaken.pk]

    reversal = services.transfer_reverse(key="undo", transfer=mistaken, effective_date=day(12)).transfer

    after = reconciliation.report(cash, day(31))
    assert after.ledger_only == [] and after.difference == after.explained
    # Before the reversal's date the mistake is still there to explain.
    assert [item.id for item in reconciliation.report(cash, day(11)).ledger_only] == [mistaken.pk]
    # Once the statement shows one of the pair, the other is listed again: it no longer cancels anything out.
    line = StatementLine.objects.get(amount=-750)
    matching.match_by_hand(line=line, transfer_ids=[reversal.pk], acting_user=officer)
    assert [item.id for item in reconciliation.report(cash, day(31)).ledger_only] == [mistaken.pk]


def test_a_month_closes_only_when_every_cash_account_reconciles(books, officer):
    cash, charges = books
    manager = user_with_role(Role.FINANCE_MANAGER)
    import_ofx(cash, officer)
    matching.auto_match(cash)
    checklist = reconciliation.close_checklist(OCT)
    assert [(r.cash_account.name, r.reconciled) for r in checklist] == [("ICB bank", False)]
    with pytest.raises(reconciliation.NotReconciled, match="ICB bank not reconciled"):
        reconciliation.period_close_reconciled(month=OCT, acting_user=manager)
    assert not ClosedPeriod.objects.exists()
    matching.transfer_from_line(
        line=StatementLine.objects.get(amount=-750),
        other_account_id=charges.pk,
        code="bank_charge",
        reason="fee",
        acting_user=officer,
    )
    reconciliation.period_close_reconciled(month=OCT, acting_user=manager)
    with pytest.raises(PeriodClosed):
        post(charges, cash.account, 1, effective_date=day(20))
