"""What stops a plan being submitted or approved (DESIGN.md rules 2, 3, 10, 11, 12), section by section.

The same list drives the FSM conditions, the task list's statuses and the check-answers page, so a broker
sees exactly what an approver's check would refuse.
"""

from __future__ import annotations

import dataclasses

from django.utils import timezone

SECTIONS = {
    "about": "About the person",
    "needs": "Needs and outcomes",
    "support": "Support",
    "budget": "Budget and funding",
    "payments": "Payments and contingency",
    "risks": "Risks",
    "coordination": "Care coordination and reviews",
}

ABOUT_MISSING = "Describe what matters to the person"
NEEDS_MISSING = "Add at least one need"
OUTCOMES_MISSING = "Add at least one outcome"
OUTCOME_WITHOUT_NEED = "Link outcome “{outcome}” to the needs it meets"
LINES_MISSING = "Add at least one line of support"
LINE_PROHIBITED = "“{line}” is in a category a personal health budget cannot pay for: {reason}"
LINE_UNREGISTERED = "“{line}” needs a provider with a {registration} registration number"
LINE_CONNECTED = "“{line}” pays {payee}, a {relationship}: record a dated necessity approval first"
LINE_NO_HOLDER = "“{line}” is a third-party line: choose the organisation that will hold the money"
LINE_HOLDER_NOT_INDEPENDENT = "“{line}”: a third-party holder must be independent of the NHS and the person"
LINE_HOLDER_NOT_THIRD_PARTY = "“{line}” is not a third-party line: remove its third-party holder"
BUDGET_MISSING = "Enter the budget"
FUNDING_MISMATCH = "The funding split ({funding}) must add up to the budget ({budget})"
OVER_BUDGET = (
    "The support costs {total} a year, more than the budget of {budget}: reduce it or ask an approver for an exception"
)
# The contingency is kept apart from the budget when it is set up, so the support must fit in what is left.
OVER_BUDGET_WITH_CONTINGENCY = (
    "The support ({total}) and the contingency ({contingency}) come to {both} a year, more than the budget of "
    "{budget}: reduce one of them or ask an approver for an exception"
)
# Rule 3: the one problem a broker may submit with (asking for an exception, with reasons) and an approver may
# approve with (recording the exception, with theirs).
OVER_BUDGET_KIND = "over_budget"
PAYMENT_MISSING = "Choose how often the payments are made"
CONTINGENCY_MISSING = "Describe the contingency plan"
RISKS_MISSING = "Add at least one risk and how it is managed"
COORDINATOR_MISSING = "Name the care coordinator"
MONITOR_MISSING = "Say who monitors the person's health"
REVIEW_DATE_MISSING = "Enter the first review date"
REVIEW_DATE_PAST = "The first review date must be in the future"
NOTICE_MISSING = "Enter the notice period in days"


@dataclasses.dataclass(frozen=True)
class Problem:
    section: str
    message: str
    kind: str = ""  # OVER_BUDGET_KIND for the lines costing more than the budget (rule 3)


def plan_problems(plan) -> list[Problem]:
    from accounts.models import OrganisationKind
    from brokerage.models import ManagementType

    problems: list[Problem] = []

    def add(section: str, message: str, kind: str = "") -> None:
        problems.append(Problem(section, message, kind))

    if not plan.about_me.strip():
        add("about", ABOUT_MISSING)

    needs = list(plan.needs.all())
    outcomes = list(plan.outcomes.prefetch_related("needs"))
    if not needs:
        add("needs", NEEDS_MISSING)
    if not outcomes:
        add("needs", OUTCOMES_MISSING)
    for outcome in outcomes:
        if not outcome.needs.all():
            add("needs", OUTCOME_WITHOUT_NEED.format(outcome=outcome.description))

    lines = list(plan.lines.select_related("category", "provider", "third_party_holder"))
    if not lines:
        add("support", LINES_MISSING)
    connected = {c.provider_id: c for c in plan.person.connected_people.all()}
    for line in lines:
        if line.category.is_prohibited:
            add("support", LINE_PROHIBITED.format(line=line.description, reason=line.category.prohibited_reason))
        registration = line.category.requires_registration
        if registration and (line.provider is None or not line.provider.holds_registration(registration)):
            add(
                "support",
                LINE_UNREGISTERED.format(
                    line=line.description, registration=line.category.get_requires_registration_display()
                ),
            )
        link = connected.get(line.provider_id)
        if link is not None and link.blocked:
            add(
                "support",
                LINE_CONNECTED.format(
                    line=line.description,
                    payee=link.provider.name,
                    relationship=link.get_relationship_display().lower(),
                ),
            )
        if line.management_type == ManagementType.THIRD_PARTY:
            if line.third_party_holder is None:
                add("support", LINE_NO_HOLDER.format(line=line.description))
            elif line.third_party_holder.kind != OrganisationKind.THIRD_PARTY_HOLDER:
                add("support", LINE_HOLDER_NOT_INDEPENDENT.format(line=line.description))
        elif line.third_party_holder_id is not None:
            add("support", LINE_HOLDER_NOT_THIRD_PARTY.format(line=line.description))

    if plan.budget.amount <= 0:
        add("budget", BUDGET_MISSING)
    else:
        if plan.funding_total != plan.budget:
            add("budget", FUNDING_MISMATCH.format(funding=plan.funding_total, budget=plan.budget))
        total = sum((line.annual_cost for line in lines), plan.budget * 0)
        if total + plan.contingency_amount > plan.budget and not plan.exception_reasons.strip():
            if total > plan.budget or not plan.contingency_amount.amount:
                add("budget", OVER_BUDGET.format(total=total, budget=plan.budget), OVER_BUDGET_KIND)
            else:
                both = total + plan.contingency_amount
                add(
                    "budget",
                    OVER_BUDGET_WITH_CONTINGENCY.format(
                        total=total, contingency=plan.contingency_amount, both=both, budget=plan.budget
                    ),
                    OVER_BUDGET_KIND,
                )

    if not plan.payment_frequency:
        add("payments", PAYMENT_MISSING)
    if not plan.contingency_description.strip():
        add("payments", CONTINGENCY_MISSING)

    if not plan.risks.exists():
        add("risks", RISKS_MISSING)

    if plan.care_coordinator_id is None:
        add("coordination", COORDINATOR_MISSING)
    if not plan.health_monitor.strip():
        add("coordination", MONITOR_MISSING)
    if plan.first_review_date is None:
        add("coordination", REVIEW_DATE_MISSING)
    elif plan.first_review_date <= timezone.localdate():
        add("coordination", REVIEW_DATE_PAST)
    if not plan.notice_period_days:
        add("coordination", NOTICE_MISSING)
    return problems


def submit_problems(plan) -> list[Problem]:
    """What stops the broker submitting: everything but the lines costing more than the budget, which the broker may
    submit as a request for an approver's exception, with reasons (rule 3; brokerage.services.plan_transition)."""
    return [problem for problem in plan_problems(plan) if problem.kind != OVER_BUDGET_KIND]


def problems_by_section(plan) -> dict[str, list[Problem]]:
    grouped: dict[str, list[Problem]] = {key: [] for key in SECTIONS}
    for problem in plan_problems(plan):
        grouped[problem.section].append(problem)
    return grouped
