"""The person is told what was decided about their flagged spending: once the check commits, an email to them and to
the representatives and nominees who sign in for them says in plain English what was decided and what happens next
(with no amount or payee, like the statement email); and their transactions page shows the outcome against the
payment ("Checked by your care coordinator on 20 December 2026: accepted")."""

import datetime
import html
import re

import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.roles import Role
from accounts.tasks import send_email
from brokerage.models import Representative
from budgets import spending
from budgets.models import SpendCheck, StopDecision, StopGround
from budgets.services import BudgetError
from providers.models import ServiceCategory
from tests.budgets.test_person_pages import budget_in_use
from tests.budgets.test_spending_checks import START, TODAY, holder_spend, item_for, purchase
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _in_december(time_machine):
    time_machine.move_to(TODAY, tick=False)


@pytest.fixture
def crew(agreed, settings, tmp_path):
    """As tests/budgets/test_spending_checks.py's: journey 1's budget from 1 December, the person's own sign-in and
    a third-party holder's staff."""
    settings.MEDIA_ROOT = tmp_path / "media"
    budget = budget_in_use(agreed, start=START)
    patient = user_with_role(Role.PATIENT, email="joan@example.org")
    agreed["person"].user = patient
    agreed["person"].save(update_fields=["user"])
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


def emails() -> list[dict]:
    """The emails queued (Procrastinate jobs), oldest first."""
    jobs = ProcrastinateJob.objects.filter(task_name="accounts.send_email").order_by("id")
    return [job.args for job in jobs]


def page_text(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


@pytest.fixture
def acting_for(crew):
    """A representative and a nominee who sign in for the person, and a representative who no longer acts."""
    person = crew["plan"].person
    made = {}
    for kind, name, active in (
        ("representative", "Rep", True),
        ("nominee", "Nom", True),
        ("representative", "Old", False),
    ):
        role = Role.NOMINEE if kind == "nominee" else Role.REPRESENTATIVE
        user = user_with_role(role, email=f"{name.lower()}@example.org")
        made[name] = Representative.objects.create(
            person=person,
            kind=kind,
            name=name,
            relationship="friend",
            basis="" if kind == "nominee" else "adult_lacking_capacity",
            nominated_on=datetime.date(2026, 1, 5) if kind == "nominee" else None,
            consent_recorded_on=datetime.date(2026, 1, 6) if kind == "nominee" else None,
            user=user,
            active=active,
            ended_on=None if active else datetime.date(2026, 6, 1),
        )
    return made


def test_the_person_and_those_acting_for_them_are_told_the_decision_once_it_commits(
    crew, acting_for, django_capture_on_commit_callbacks
):
    spend = purchase(crew, "u1", amount=12_34)
    with django_capture_on_commit_callbacks(execute=False) as waiting:
        spending.spend_check(
            item=item_for(spend), decision=SpendCheck.ACCEPTED, reasons="Bus fare", acting_user=crew["coordinator"]
        )
    assert emails() == [] and waiting  # nothing is sent before the check commits
    for callback in waiting:
        callback()
    sent = emails()
    assert sorted(email["to"][0] for email in sent) == sorted(
        [crew["patient"].email, "rep@example.org", "nom@example.org"]  # not the representative who stopped acting
    )
    assert all(len(email["to"]) == 1 for email in sent)  # nobody sees the others' addresses
    body = sent[0]["body"]
    assert sent[0]["subject"] == spending.CHECKED_SUBJECT
    assert "Your care coordinator has checked a payment from your direct payment on 5 December 2026" in body
    assert "it was not matched to a part of your plan" in body
    assert "They accepted it. You do not need to do anything." in body
    assert f"/my/budgets/{crew['budget'].pk}/transactions/" in body
    assert "Shop u1" not in body and "£" not in body and "Bus fare" not in body  # behind the sign-in
    send_email(**sent[0])  # the worker's job sends it as it stands


def test_each_decision_says_what_happens_next(crew, django_capture_on_commit_callbacks):
    prohibited = ServiceCategory.objects.filter(is_prohibited=True).first()
    wine = purchase(crew, "p1", line=crew["dp_line"], category=prohibited)
    held = holder_spend(crew, "h1")
    with django_capture_on_commit_callbacks(execute=True):
        spending.spend_check(
            item=item_for(wine), decision=SpendCheck.RECOVERY, reasons="Wine", acting_user=crew["broker"]
        )
    with django_capture_on_commit_callbacks(execute=True):
        spending.spend_check(
            item=item_for(held), decision=SpendCheck.CODED, line=crew["tp_line"], acting_user=crew["coordinator"]
        )
    referred, coded = (email["body"] for email in emails())
    assert "Your care broker has checked a payment from your direct payment" in referred
    assert "it looked like a kind of purchase the budget cannot pay for" in referred
    assert "asked our finance team to recover the money" in referred and "ask us to reconsider" in referred
    assert "You do not need to pay anything until you get that letter" in referred
    assert f"a payment {crew['holder'].name} made from your budget on 6 December 2026" in coded
    assert "matched it to a part of your care and support plan" in coded

    # A check refused sends nothing; nor does one after the person's death.
    later = purchase(crew, "u2")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(BudgetError):
        spending.spend_check(item=item_for(later), decision=SpendCheck.ACCEPTED, acting_user=crew["coordinator"])
    StopDecision.objects.create(
        budget=crew["budget"],
        ground=StopGround.DEATH,
        decided_by=crew["finance"],
        reasons="Joan died on 18 December 2026",
        decided_on=datetime.date(2026, 12, 18),
        ends_on=datetime.date(2026, 12, 18),
    )
    with django_capture_on_commit_callbacks(execute=True):
        spending.spend_check(
            item=item_for(later), decision=SpendCheck.ACCEPTED, reasons="ok", acting_user=crew["broker"]
        )
    assert len(emails()) == 2


def test_the_transactions_page_shows_each_outcome_against_the_payment(client, crew):
    budget, line = crew["budget"], crew["dp_line"]
    prohibited = ServiceCategory.objects.filter(is_prohibited=True).first()
    uncoded = purchase(crew, "u3", amount=7_33)
    wine = purchase(crew, "p2", line=line, category=prohibited, amount=5_00)
    held = holder_spend(crew, "h2")
    purchase(crew, "fine", line=line, amount=1_00)
    url = f"/my/budgets/{budget.pk}/transactions/"
    client.force_login(crew["patient"])
    before = page_text(client.get(url))
    assert before.count("To be checked by your care coordinator") == 3  # the three flagged payments, not the fine one
    assert "To be checked: not part of the plan" in before  # the purchases table says why

    spending.spend_check(item=item_for(uncoded), decision=SpendCheck.CODED, line=line, acting_user=crew["coordinator"])
    spending.spend_check(
        item=item_for(wine), decision=SpendCheck.ACCEPTED, reasons="Agreed at the review", acting_user=crew["broker"]
    )
    spending.spend_check(
        item=item_for(held), decision=SpendCheck.RECOVERY, reasons="Not for Joan", acting_user=crew["coordinator"]
    )
    after = page_text(client.get(url))
    description = line.plan_line.description
    coded = f"Checked by your care coordinator on 20 December 2026: matched to {description}"
    assert after.count(coded) == 2  # on the payment's row, and in the purchases table
    assert after.count("Checked by your care broker on 20 December 2026: accepted") == 2
    assert "Checked by your care coordinator on 20 December 2026: referred for recovery" in after
    assert "To be checked" not in after
    assert "Not for Joan" not in after and "Agreed at the review" not in after  # the reasons stay with the staff
