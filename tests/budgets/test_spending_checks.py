"""Rules 9 and 10: flagged spending is checked by someone. Spending not coded to a plan line, or in a category the
budget cannot pay for, is listed on the budget's monitoring page until the care coordinator or broker codes it to a
line (a correcting transfer moves it from the uncoded account: the ledger is never changed), accepts it with a
written reason, or refers it for recovery. Who decided and when is kept on the row and in its history."""

import datetime
import html
import re

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.roles import Role
from budgets import person_selectors, spending, statements
from budgets.models import DirectPaymentSpend, HolderSpend, SpendCheck, SpendFlag
from budgets.services import BudgetError
from ledger.models import Account, Transfer
from ledger.verification import ledger_verify
from providers.models import ServiceCategory
from tests.brokerage.helpers import agreed_crew
from tests.budgets.test_person_pages import budget_in_use
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
START = datetime.date(2026, 12, 1)
TODAY = datetime.datetime(2026, 12, 20, 10, 0)


@pytest.fixture(autouse=True)
def _in_december(time_machine):
    time_machine.move_to(TODAY, tick=False)


@pytest.fixture
def crew(agreed, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    budget = budget_in_use(agreed, start=START)
    patient = user_with_role(Role.PATIENT)
    person = agreed["plan"].person
    person.user = patient
    person.save(update_fields=["user"])
    tp_line = budget.lines.get(management_type="third_party")
    holder = tp_line.plan_line.third_party_holder
    agreed.update(
        budget=budget,
        patient=patient,
        dp_line=budget.lines.get(management_type="direct_payment"),
        tp_line=tp_line,
        holder=holder,
        staff=user_with_role(Role.THIRD_PARTY_STAFF, organisation=holder),
    )
    return agreed


def purchase(crew, key, *, line=None, category=None, amount=10_00, by=None):
    return spending.dp_spend_record(
        budget=crew["budget"],
        line=line,
        payee=f"Shop {key}",
        spent_on=datetime.date(2026, 12, 5),
        amount_pence=amount,
        key=key,
        acting_user=by or crew["patient"],
        category=category,
    )


def holder_spend(crew, key, *, line=None, amount=25_00):
    return spending.holder_spend_record(
        budget=crew["budget"],
        holder=crew["holder"],
        line=line,
        payee="Carers Direct Ltd",
        spent_on=datetime.date(2026, 12, 6),
        amount_pence=amount,
        key=key,
        acting_user=crew["staff"],
    )


def item_for(spend) -> spending.FlaggedSpend:
    kind = "purchase" if isinstance(spend, DirectPaymentSpend) else "holder"
    return spending.flagged_spend_get(spend.budget, kind, spend.pk)


def balance(code: str) -> int:
    return Account.objects.get(code=code).posted_balance


def test_uncoded_purchase_coded_to_a_line_moves_the_money_by_a_correcting_transfer(crew):
    """As an accounting exercise: £10 paid from the direct payment for something not coded to a line sits in the
    uncoded spend account. Coding it to the direct-payment line debits that line's spend account and credits the
    uncoded account: spending stays £10, the direct-payment account is untouched, nothing is rewritten."""
    budget, line = crew["budget"], crew["dp_line"]
    ref = budget.owner_ref
    spend = purchase(crew, "u1")
    held_before = balance(f"{ref}:held:direct-payment")
    original = Transfer.objects.get(idempotency_key="dp-spend:u1")
    assert [item.spend.pk for item in spending.flagged_spending(budget)] == [spend.pk]

    checked = spending.spend_check(
        item=item_for(spend), decision=SpendCheck.CODED, line=line, acting_user=crew["coordinator"]
    )

    assert balance(f"{ref}:spend:uncoded") == 0
    assert Account.objects.get(pk=line.spend_account_id).posted_balance == 10_00
    assert balance(f"{ref}:held:direct-payment") == held_before
    correction = Transfer.objects.get(idempotency_key=f"spend-check:purchase:{spend.pk}")
    assert (correction.debit_account_id, correction.amount, correction.code) == (
        line.spend_account_id,
        10_00,
        "spend_coded",
    )
    assert correction.credit_account_id == Account.objects.get(code=f"{ref}:spend:uncoded").pk
    assert correction.effective_date == TODAY.date()
    assert Transfer.objects.get(pk=original.pk).debit_account_id == original.debit_account_id  # the original stays
    spend.refresh_from_db()
    assert spend.budget_line == line and spend.flag == SpendFlag.UNCODED  # why it was flagged stays on record
    assert (spend.check_decision, spend.checked_by, spend.checked_at) == (
        SpendCheck.CODED,
        crew["coordinator"],
        timezone.now(),
    )
    assert checked.spend.check_decision == SpendCheck.CODED
    assert spending.flagged_spending(budget) == []
    assert [item.spend.pk for item in spending.flagged_spending(budget, checked=True)] == [spend.pk]
    # The audit row: the change, who made it and why, kept by the history trigger.
    event = DirectPaymentSpend.pgh_event_model.objects.filter(pgh_obj=spend, pgh_label="update").latest("pgh_id")
    assert event.check_decision == SpendCheck.CODED and event.budget_line_id == line.pk
    assert event.pgh_context.metadata["user"] == crew["coordinator"].pk
    assert event.pgh_context.metadata["action"] == "spend_check"
    # The person's page, the chart and the statement agree: no uncoded row, spending counted once.
    summary = person_selectors.overview(budget)
    assert summary.uncoded is None and summary.spent == sum(row.spent for row in summary.rows)
    assert summary.chart[0].spent_pence == summary.spent
    data = statements.statement_data(budget, START, TODAY.date())
    assert data.spent_to_date_total == summary.spent
    assert data.money_out_total == sum(row.money_out for row in data.transactions)
    moved = [row for row in data.transactions if "after checking" in row.description]
    assert [(row.line, row.money_in, row.money_out) for row in moved] == [(line.plan_line.description, 0, 0)]
    assert ledger_verify().ok


def test_accepting_or_referring_needs_reasons_and_a_prohibited_purchase_on_a_line_is_not_coded_again(crew):
    prohibited = ServiceCategory.objects.filter(is_prohibited=True).first()
    on_line = purchase(crew, "p1", line=crew["dp_line"], category=prohibited)
    uncoded = purchase(crew, "u2")
    assert on_line.flag == SpendFlag.PROHIBITED and not item_for(on_line).can_be_coded
    for decision in (SpendCheck.ACCEPTED, SpendCheck.RECOVERY):
        with pytest.raises(BudgetError, match=spending.CHECK_REASONS[decision]):
            spending.spend_check(item=item_for(uncoded), decision=decision, reasons="  ", acting_user=crew["broker"])
    with pytest.raises(BudgetError, match="already coded to a line"):
        spending.spend_check(
            item=item_for(on_line), decision=SpendCheck.CODED, line=crew["dp_line"], acting_user=crew["broker"]
        )
    with pytest.raises(BudgetError, match=spending.CHECK_CHOOSE):
        spending.spend_check(item=item_for(uncoded), decision="shrug", acting_user=crew["broker"])
    moved = Transfer.objects.count()
    spending.spend_check(
        item=item_for(on_line),
        decision=SpendCheck.RECOVERY,
        reasons=" Wine is not in the plan ",
        acting_user=crew["broker"],
    )
    spending.spend_check(
        item=item_for(uncoded),
        decision=SpendCheck.ACCEPTED,
        reasons="Bus fare to the class",
        acting_user=crew["broker"],
    )
    assert Transfer.objects.count() == moved  # accepting or referring moves no money
    on_line.refresh_from_db()
    assert (on_line.check_decision, on_line.check_reasons, on_line.checked_by) == (
        SpendCheck.RECOVERY,
        "Wine is not in the plan",
        crew["broker"],
    )
    with pytest.raises(BudgetError, match=spending.CHECK_DONE):
        spending.spend_check(
            item=item_for(uncoded), decision=SpendCheck.CODED, line=crew["dp_line"], acting_user=crew["coordinator"]
        )
    assert spending.flagged_spending(crew["budget"]) == []


def test_holder_spending_is_coded_only_to_the_lines_the_holder_holds_and_then_counts_as_coded(crew):
    spend = holder_spend(crew, "h1")
    assert spend.flag == SpendFlag.UNCODED
    for wrong in (crew["dp_line"], None):
        with pytest.raises(BudgetError, match=spending.CHECK_LINE):
            spending.spend_check(
                item=item_for(spend), decision=SpendCheck.CODED, line=wrong, acting_user=crew["coordinator"]
            )
    other = agreed_crew()
    other_budget = budget_in_use(other, start=START)
    with pytest.raises(BudgetError, match=spending.CHECK_LINE):
        spending.spend_check(
            item=item_for(spend),
            decision=SpendCheck.CODED,
            line=other_budget.lines.get(management_type="third_party"),
            acting_user=crew["coordinator"],
        )
    period = {"period_start": START, "period_end": TODAY.date()}
    before = spending.holder_period_figures(budget=crew["budget"], holder=crew["holder"], **period)
    assert before["uncoded_pence"] == 25_00
    spending.spend_check(
        item=item_for(spend), decision=SpendCheck.CODED, line=crew["tp_line"], acting_user=crew["coordinator"]
    )
    after = spending.holder_period_figures(budget=crew["budget"], holder=crew["holder"], **period)
    # Coded now; the money the holder received, spent and holds is unchanged by the correction.
    assert after == {**before, "uncoded_pence": 0}
    assert Account.objects.get(pk=crew["tp_line"].spend_account_id).posted_balance == 25_00
    assert HolderSpend.pgh_event_model.objects.filter(pgh_obj=spend, pgh_label="update").count() == 1
    assert ledger_verify().ok


def test_only_the_persons_own_coordinator_or_broker_checks_and_never_their_own_record(crew):
    spend = purchase(crew, "u3")
    stranger = user_with_role(Role.CARE_COORDINATOR, organisation=crew["icb"])  # not assigned to the person
    for user in (crew["finance"], stranger, crew["patient"], crew["staff"], crew["approver"]):
        with pytest.raises(BudgetError, match=spending.CHECK_NOT_YOURS):
            spending.spend_check(item=item_for(spend), decision=SpendCheck.ACCEPTED, reasons="ok", acting_user=user)
    own = purchase(crew, "u4", by=crew["coordinator"])
    with pytest.raises(BudgetError, match=spending.CHECK_OWN):
        spending.spend_check(
            item=item_for(own), decision=SpendCheck.ACCEPTED, reasons="ok", acting_user=crew["coordinator"]
        )
    spending.spend_check(item=item_for(own), decision=SpendCheck.ACCEPTED, reasons="ok", acting_user=crew["broker"])
    assert DirectPaymentSpend.objects.get(pk=spend.pk).check_decision == ""


def test_the_database_refuses_a_check_without_who_when_reasons_or_a_line(crew):
    spend = purchase(crew, "u5")
    coded = purchase(crew, "c1", line=crew["dp_line"])
    now = timezone.now()
    for rows, fields, constraint in (
        (
            DirectPaymentSpend.objects.filter(pk=spend.pk),
            {"check_decision": "accepted", "check_reasons": "x"},
            "check_says_who_and_when",
        ),
        (
            DirectPaymentSpend.objects.filter(pk=spend.pk),
            {"check_decision": "accepted", "checked_by": crew["broker"], "checked_at": now},
            "check_has_reasons",
        ),
        (
            DirectPaymentSpend.objects.filter(pk=spend.pk),
            {"check_decision": "coded", "checked_by": crew["broker"], "checked_at": now},
            "coded_has_line",
        ),
        (
            DirectPaymentSpend.objects.filter(pk=coded.pk),
            {"check_decision": "accepted", "check_reasons": "x", "checked_by": crew["broker"], "checked_at": now},
            "check_only_if_flagged",
        ),
    ):
        with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
            rows.update(**fields)


def page_text(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def test_the_monitoring_page_lists_flagged_spending_and_the_coordinator_resolves_it(client, crew):
    budget = crew["budget"]
    prohibited = ServiceCategory.objects.filter(is_prohibited=True).first()
    uncoded = purchase(crew, "u6", amount=7_33)
    wine = purchase(crew, "p2", line=crew["dp_line"], category=prohibited, amount=5_00)
    unsure = holder_spend(crew, "h2")
    purchase(crew, "fine", line=crew["dp_line"], amount=1_00)  # coded: not listed
    url = f"/budgets/{budget.pk}/monitoring/"

    client.force_login(crew["finance"])  # finance monitors every budget: sees the list, does not check it
    seen = page_text(client.get(url))
    assert "Spending to check" in seen and seen.count("Waiting for the care coordinator") == 3
    assert "/monitoring/purchases/" not in seen and "/monitoring/holder-spending/" not in seen

    client.force_login(crew["coordinator"])
    page = page_text(client.get(url))
    for text in ("Shop u6", "£7.33", "Not coded to a line of the plan", f"{prohibited.name}: a kind of purchase"):
        assert text in page
    assert "Carers Direct Ltd" in page and "(third-party holder)" in page and "Shop fine" not in page
    links = {
        "uncoded": f"/budgets/{budget.pk}/monitoring/purchases/{uncoded.pk}/",
        "wine": f"/budgets/{budget.pk}/monitoring/purchases/{wine.pk}/",
        "unsure": f"/budgets/{budget.pk}/monitoring/holder-spending/{unsure.pk}/",
    }
    for link in links.values():
        assert f'href="{link}"' in page

    form = page_text(client.get(links["uncoded"]))
    assert "Check spending" in form and "Coded to a plan line" in form and crew["dp_line"].plan_line.description in form
    wine_form = page_text(client.get(links["wine"]))
    assert "Coded to a plan line" not in wine_form and "Download the receipt" not in wine_form
    # Errors are explained beside the fields, nothing is decided.
    for body, message in (
        ({}, spending.CHECK_CHOOSE),
        ({"decision": "coded"}, spending.CHECK_LINE),
        ({"decision": "accepted", "reasons": " "}, spending.CHECK_REASONS[SpendCheck.ACCEPTED]),
        ({"decision": "coded", "line": crew["tp_line"].pk}, spending.CHECK_LINE),
    ):
        refused = client.post(links["uncoded"], body)
        assert refused.status_code == 200 and "nhsuk-error-summary" in refused.content.decode()
        assert message in page_text(refused), body
    assert DirectPaymentSpend.objects.get(pk=uncoded.pk).check_decision == ""

    done = client.post(links["uncoded"], {"decision": "coded", "line": crew["dp_line"].pk})
    assert done.status_code == 302 and done["Location"] == url
    again = client.post(links["uncoded"], {"decision": "accepted", "reasons": "twice"})
    assert spending.CHECK_DONE in page_text(again)  # a second click is told, and changes nothing
    assert DirectPaymentSpend.objects.get(pk=uncoded.pk).check_decision == SpendCheck.CODED
    assert client.post(links["wine"], {"decision": "recovery", "reasons": "Wine"}).status_code == 302
    assert (
        client.post(links["unsure"], {"decision": "accepted", "reasons": "Agency invoice, agreed"}).status_code == 302
    )

    after = page_text(client.get(url))
    assert "No spending to check." in after
    assert f"Coded to a plan line: {crew['dp_line'].plan_line.description}" in after
    assert f"by {crew['coordinator'].full_name}" in after and "Agency invoice, agreed" in after
    assert "Finance write the notice asking for the money back." in after
    client.force_login(crew["finance"])
    assert f'href="/budgets/{budget.pk}/recoveries/new/"' in page_text(client.get(url))  # finance: the existing flow
    assert client.get(links["wine"]).status_code == 404  # finance may not open the check page
    client.force_login(crew["coordinator"])
    decided = page_text(client.get(links["wine"]))
    assert "Referred for recovery" in decided and f"{crew['coordinator'].full_name}, 20 December 2026" in decided
    assert "Save decision" not in decided


def test_the_check_page_answers_404_to_everyone_else_and_for_anything_not_flagged(client, crew):
    budget = crew["budget"]
    uncoded = purchase(crew, "u7")
    coded = purchase(crew, "c2", line=crew["dp_line"])
    mine = f"/budgets/{budget.pk}/monitoring/purchases/{uncoded.pk}/"
    other = agreed_crew()
    other_budget = budget_in_use(other, start=START)
    for user in (crew["patient"], crew["staff"], crew["finance"], other["coordinator"], crew["approver"]):
        client.force_login(user)
        assert client.get(mine).status_code == 404
        assert client.post(mine, {"decision": "accepted", "reasons": "x"}).status_code == 404
    client.force_login(crew["coordinator"])
    for url in (
        f"/budgets/{budget.pk}/monitoring/purchases/{coded.pk}/",  # not flagged
        f"/budgets/{budget.pk}/monitoring/holder-spending/{uncoded.pk}/",  # no such holder spending
        f"/budgets/{other_budget.pk}/monitoring/purchases/{uncoded.pk}/",  # another budget's
    ):
        assert client.get(url).status_code == 404, url
    assert DirectPaymentSpend.objects.get(pk=uncoded.pk).check_decision == ""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    decision=st.one_of(st.sampled_from(["", "coded", "accepted", "recovery"]), st.text(max_size=12)),
    line=st.one_of(st.just(""), st.text(max_size=8), st.integers(-5, 10**12).map(str)),
    reasons=st.one_of(st.text(max_size=50), st.text(min_size=1990, max_size=2100)),
)
def test_the_check_form_never_fails_with_random_input(client, crew, decision, line, reasons):
    spend = DirectPaymentSpend.objects.filter(budget=crew["budget"], check_decision="").first() or purchase(
        crew, f"fuzz-{DirectPaymentSpend.objects.count()}", amount=1
    )
    client.force_login(crew["coordinator"])
    url = f"/budgets/{crew['budget'].pk}/monitoring/purchases/{spend.pk}/"
    with time_machine.travel(TODAY, tick=False):
        response = client.post(url, {"decision": decision, "line": line, "reasons": reasons})
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert "nhsuk-error-summary" in response.content.decode()  # every refusal says why
    else:
        assert DirectPaymentSpend.objects.get(pk=spend.pk).check_decision in SpendCheck.values
