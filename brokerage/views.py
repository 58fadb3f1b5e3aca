"""Pages for people and plans. Thin: each reads through a scoped selector (404 outside the user's scope),
validates a form and calls one service; service refusals are shown in the error summary."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from brokerage import exceptions as errors
from brokerage import forms, selectors, services
from brokerage.models import (
    CarePlan,
    ConnectedPerson,
    Need,
    Outcome,
    Person,
    PlanLine,
    PlanStatus,
    Representative,
    Risk,
)
from brokerage.validation import OVER_BUDGET_KIND, SECTIONS, problems_by_section

SIMPLE_SECTIONS = {
    "about": forms.AboutForm,
    "budget": forms.BudgetForm,
    "payments": forms.PaymentsForm,
    "coordination": forms.CoordinationForm,
}
MONEY_FIELDS = {
    "indicative_budget",
    "budget",
    "funding_icb",
    "funding_local_authority",
    "funding_contribution",
    "contingency_amount",
}


def _plan(request: HttpRequest, pk: int) -> CarePlan:
    try:
        return selectors.plan_get(user=request.user, pk=pk)
    except CarePlan.DoesNotExist as exc:
        raise Http404 from exc


def _person(request: HttpRequest, pk: int) -> Person:
    try:
        return selectors.person_get(user=request.user, pk=pk)
    except Person.DoesNotExist as exc:
        raise Http404 from exc


def _editable(request: HttpRequest, plan: CarePlan) -> None:
    if not plan.is_editable or not request.user.has_perm("brokerage.change_careplan", plan):
        raise Http404


# --- People ---------------------------------------------------------------------------------------------


@login_required
def people(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("brokerage.view_people"):
        raise Http404
    query = request.GET.get("q", "").strip()[:100]
    found = selectors.people_visible_to(request.user).select_related("icb")
    if query:
        found = found.filter(selectors.person_search(query))
    page = Paginator(found.order_by("family_name", "given_name"), 25).get_page(request.GET.get("page"))
    return render(request, "brokerage/people.jinja", {"page": page, "query": query})


@login_required
def person_add(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("brokerage.add_person"):
        raise Http404
    form = forms.PersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        person = services.person_create(acting_user=request.user, **form.cleaned_data)
        messages.success(request, f"{person.full_name} has been added. You can now start their plan.")
        return redirect("brokerage:person", pk=person.pk)
    return render(request, "brokerage/person_add.jinja", {"form": form})


@login_required
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    plans = person.plans.select_related("author").order_by("-version")
    can_start = (
        request.user.has_perm("brokerage.add_careplan", person)
        and not plans.filter(
            status__in=[PlanStatus.DRAFT, PlanStatus.SUBMITTED, PlanStatus.RETURNED, PlanStatus.APPROVED]
        ).exists()
    )
    return render(
        request,
        "brokerage/person.jinja",
        {
            "person": person,
            "plans": plans,
            "can_start": can_start,
            "acting": selectors.acting_for(person).filter(active=True),
            "connected": selectors.connected_people(person),
            "sign_ins": selectors.sign_ins_for(person),
        },
    )


# --- People who act for the person, or are paid by them (rules 7 and 11) --------------------------------


def _may_record(request: HttpRequest, person: Person) -> None:
    if not request.user.has_perm("brokerage.change_person", person):
        raise Http404


def _refused(form, exc: errors.BrokerageError) -> None:
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, str(exc))


@login_required
def person_acting(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    return render(
        request,
        "brokerage/person_acting.jinja",
        {
            "person": person,
            "acting": selectors.acting_for(person),
            "connected": selectors.connected_people(person),
            "sign_ins": selectors.sign_ins_for(person),
            "can_record": request.user.has_perm("brokerage.change_person", person),
            "can_approve": request.user.has_perm("brokerage.approve_necessity", person),
        },
    )


@login_required
def representative_add(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    _may_record(request, person)
    form = forms.RepresentativeForm(request.POST or None, person=person)
    if request.method == "POST" and form.is_valid():
        try:
            added = services.representative_add(person=person, acting_user=request.user, **form.cleaned_data)
            messages.success(
                request,
                f"{added.name} is recorded as {person.full_name}'s {added.get_kind_display().lower()}: they can now "
                "receive or manage the direct payment for them.",
            )
            return redirect("brokerage:person-acting", pk=person.pk)
        except errors.BrokerageError as exc:
            _refused(form, exc)
    return render(request, "brokerage/representative_add.jinja", {"person": person, "form": form})


@login_required
def representative_end(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        representative = selectors.representative_get(user=request.user, pk=pk)
    except Representative.DoesNotExist as exc:
        raise Http404 from exc
    person = representative.person
    _may_record(request, person)
    if not representative.active:
        return redirect("brokerage:person-acting", pk=person.pk)
    problem = None
    if request.method == "POST":
        try:
            services.representative_end(representative=representative, acting_user=request.user)
            return redirect("brokerage:person-acting", pk=person.pk)
        except errors.BrokerageError as exc:
            problem = str(exc)
    return render(
        request,
        "brokerage/representative_end.jinja",
        {"person": person, "representative": representative, "problem": problem},
    )


@login_required
def connected_person_add(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    _may_record(request, person)
    form = forms.ConnectedPersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            connection = services.connected_person_add(person=person, acting_user=request.user, **form.cleaned_data)
            messages.success(request, connected_message(connection))
            return redirect("brokerage:person-acting", pk=person.pk)
        except errors.BrokerageError as exc:
            _refused(form, exc)
    return render(request, "brokerage/connected_person_add.jinja", {"person": person, "form": form})


def connected_message(connection: ConnectedPerson) -> str:
    """After recording a connected person: whether paying them is now blocked (rule 11)."""
    recorded = (
        f"{connection.provider.name} is recorded as {connection.person.full_name}'s "
        f"{connection.get_relationship_display().lower()}"
    )
    if connection.blocked:
        return f"{recorded}. Paying them is blocked until an ICB approver records that it is necessary."
    return (
        f"{recorded}. Paying them needs no necessity approval: they are not a spouse or partner and do not live in "
        "the same household."
    )


def connection_to_decide(request: HttpRequest, pk: int) -> ConnectedPerson:
    """A connected person whose necessity (rule 11) this user may decide: 404 for anyone else."""
    try:
        connection = selectors.connected_person_get(user=request.user, pk=pk)
    except ConnectedPerson.DoesNotExist as exc:
        raise Http404 from exc
    if not request.user.has_perm("brokerage.approve_necessity", connection):
        raise Http404
    return connection


@login_required
def connected_person_necessity(request: HttpRequest, pk: int) -> HttpResponse:
    """An ICB approver of the person's ICB approves that paying a connected person is necessary (rule 11)."""
    connection = connection_to_decide(request, pk)
    form = forms.NecessityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.connected_person_approve_necessity(
                connection=connection, acting_user=request.user, reasons=form.cleaned_data["reasons"]
            )
            messages.success(
                request,
                f"The necessity approval is recorded: {connection.provider.name} can now be paid from "
                f"{connection.person.full_name}'s budget.",
            )
            return redirect("brokerage:person-acting", pk=connection.person_id)
        except errors.BrokerageError as exc:
            _refused(form, exc)
    own = connection.recorded_by_id == request.user.pk
    return render(
        request,
        "brokerage/connected_person_necessity.jinja",
        {
            "person": connection.person,
            "connection": connection,
            "form": form,
            "own": own,
            "show_form": bool(form.errors) or (connection.blocked and not own),
        },
    )


@require_POST
@login_required
def plan_start(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    if not request.user.has_perm("brokerage.add_careplan", person):
        raise Http404
    try:
        plan = services.plan_create(person=person, acting_user=request.user)
    except errors.BrokerageError:
        return redirect("brokerage:person", pk=person.pk)
    return redirect("brokerage:plan", pk=plan.pk)


# --- A plan: task list, sections, check answers ---------------------------------------------------------


@login_required
def plan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    if plan.is_editable and request.user.has_perm("brokerage.change_careplan", plan):
        problems = problems_by_section(plan)
        tasks = [
            {
                "key": key,
                "title": title,
                "done": not problems[key],
                # Costing more than the budget is the one problem a plan may be submitted with (rule 3).
                "needs_exception": bool(problems[key]) and all(p.kind == OVER_BUDGET_KIND for p in problems[key]),
            }
            for key, title in SECTIONS.items()
        ]
        return render(
            request,
            "brokerage/plan_tasks.jinja",
            {"plan": plan, "tasks": tasks, "ready": all(t["done"] or t["needs_exception"] for t in tasks)},
        )
    return render(
        request,
        "brokerage/plan_summary_page.jinja",
        {
            "plan": plan,
            "can_decide": plan.status == PlanStatus.SUBMITTED
            and request.user.has_perm("brokerage.approve_careplan", plan),
            "can_agree": plan.status == PlanStatus.APPROVED
            and request.user.has_perm("brokerage.change_careplan", plan),
            "can_reopen": plan.status == PlanStatus.RETURNED
            and request.user.has_perm("brokerage.change_careplan", plan),
            "returned_reasons": plan.transitions.filter(transition="return_to_broker").last(),
        },
    )


@login_required
def plan_section(request: HttpRequest, pk: int, section: str) -> HttpResponse:
    plan = _plan(request, pk)
    _editable(request, plan)
    form_class = SIMPLE_SECTIONS.get(section)
    if form_class is None:
        raise Http404
    initial = {}
    for name in form_class.base_fields:
        value = getattr(plan, name)
        initial[name] = value.amount if name in MONEY_FIELDS else value
    extra = {"plan": plan} if form_class is forms.PaymentsForm else {}  # its choices show each one's instalment
    form = form_class(request.POST or None, initial=initial, **extra)
    if request.method == "POST" and form.is_valid():
        values = {
            name: forms.as_money(value) if name in MONEY_FIELDS else value for name, value in form.cleaned_data.items()
        }
        try:
            services.plan_update(plan=plan, acting_user=request.user, section=section, **values)
            return redirect("brokerage:plan", pk=plan.pk)
        except errors.BrokerageError as exc:
            form.add_error(None, str(exc))
    return render(request, "brokerage/plan_section.jinja", {"plan": plan, "form": form, "title": SECTIONS[section]})


def _int(value: str | None) -> int:
    """An id from a form's hidden field: 0 (nothing's) unless it is a whole number an id can be."""
    return int(value) if value and value.isdecimal() and len(value) < 19 else 0


def _remove(request: HttpRequest, plan: CarePlan, model) -> str | None:
    try:
        item = model.objects.get(pk=int(request.POST.get("remove", "0")), plan=plan)
        services.plan_item_remove(plan=plan, acting_user=request.user, item=item)
    except (ValueError, model.DoesNotExist):
        return "That item is no longer in the plan"
    except errors.BrokerageError as exc:
        return str(exc)
    return None


@login_required
def plan_needs(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    _editable(request, plan)
    action = request.POST.get("action")
    need_form = forms.NeedForm(request.POST if action == "add_need" else None, prefix="need")
    outcome_form = forms.OutcomeForm(request.POST if action == "add_outcome" else None, plan=plan, prefix="outcome")
    problem = None
    if action == "add_need" and need_form.is_valid():
        services.need_add(plan=plan, acting_user=request.user, **need_form.cleaned_data)
        return redirect("brokerage:plan-needs", pk=plan.pk)
    if action == "add_outcome" and outcome_form.is_valid():
        services.outcome_add(
            plan=plan,
            acting_user=request.user,
            description=outcome_form.cleaned_data["description"],
            needs=list(outcome_form.cleaned_data["needs"]),
        )
        return redirect("brokerage:plan-needs", pk=plan.pk)
    if action in ("remove_need", "remove_outcome"):
        problem = _remove(request, plan, Need if action == "remove_need" else Outcome)
        if problem is None:
            return redirect("brokerage:plan-needs", pk=plan.pk)
    return render(
        request,
        "brokerage/plan_needs.jinja",
        {
            "plan": plan,
            "need_form": need_form,
            "outcome_form": outcome_form,
            "problem": problem,
            "outcomes": plan.outcomes.prefetch_related("needs"),
        },
    )


@login_required
def plan_support(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    _editable(request, plan)
    action = request.POST.get("action")
    form = forms.LineForm(request.POST if action == "add_line" else None, plan=plan)
    problem = None
    if action == "add_line" and form.is_valid():
        try:
            services.line_add(plan=plan, acting_user=request.user, **_line_values(form.cleaned_data))
            return redirect("brokerage:plan-support", pk=plan.pk)
        except errors.BrokerageError as exc:
            _refused(form, exc)
    if action == "remove_line":
        removing = plan.lines.filter(pk=_int(request.POST.get("remove"))).values_list("description", flat=True).first()
        problem = _remove(request, plan, PlanLine)
        if problem is None:
            messages.success(request, f"{removing} is removed from the plan.")
            return redirect("brokerage:plan-support", pk=plan.pk)
    lines = plan.lines.select_related("category", "provider", "outcome", "third_party_holder")
    return render(
        request, "brokerage/plan_support.jinja", {"plan": plan, "form": form, "lines": lines, "problem": problem}
    )


def _line_values(data: dict) -> dict:
    """A line's form, as the line services take it: a directory service fills in what was left empty."""
    service = data["service"]
    return {
        "description": data["description"],
        "category": data["category"] or service.category,
        "outcome": data["outcome"],
        "management_type": data["management_type"],
        "frequency": data["frequency"],
        "quantity": data["quantity"],
        "unit_cost": forms.as_money(data["unit_cost"]) if data["unit_cost"] is not None else service.unit_rate,
        "service": service,
        "provider": data["provider"],
        "third_party_holder": data["third_party_holder"],
    }


@login_required
def plan_line_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a line of a draft plan: its adding form, filled in. Only while lines can be added and removed, by
    whoever may change the plan; anyone else, and any other line, is not found."""
    try:
        line = selectors.plan_line_get(user=request.user, pk=pk)
    except PlanLine.DoesNotExist as exc:
        raise Http404 from exc
    plan = line.plan
    _editable(request, plan)
    form = forms.LineChangeForm(request.POST or None, line=line)
    if request.method == "POST" and form.is_valid():
        try:
            changed = services.line_change(
                line=line, acting_user=request.user, seen=form.cleaned_data["seen"], **_line_values(form.cleaned_data)
            )
        except errors.LineChangedMeanwhile as exc:
            messages.warning(request, str(exc))
            if str(exc) == errors.LINE_GONE:
                return redirect("brokerage:plan-support", pk=plan.pk)
            return redirect("brokerage:plan-line-change", pk=line.pk)
        except errors.BrokerageError as exc:
            _refused(form, exc)
        else:
            if changed:
                messages.success(request, f"{form.cleaned_data['description']} is changed: {_sentence(changed)}.")
            else:
                messages.info(request, f"Nothing was changed: {line.description} was already as shown.")
            return redirect("brokerage:plan-support", pk=plan.pk)
    return render(request, "brokerage/plan_line_change.jinja", {"plan": plan, "line": line, "form": form})


def _sentence(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@login_required
def plan_risks(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    _editable(request, plan)
    action = request.POST.get("action")
    form = forms.RiskForm(request.POST if action == "add_risk" else None)
    problem = None
    if action == "add_risk" and form.is_valid():
        services.risk_add(plan=plan, acting_user=request.user, **form.cleaned_data)
        return redirect("brokerage:plan-risks", pk=plan.pk)
    if action == "remove_risk":
        problem = _remove(request, plan, Risk)
        if problem is None:
            return redirect("brokerage:plan-risks", pk=plan.pk)
    return render(request, "brokerage/plan_risks.jinja", {"plan": plan, "form": form, "problem": problem})


@login_required
def plan_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Check answers, then submit. A plan whose only problem is costing more than its budget is submitted as a
    request for an approver's exception, with the broker's reasons (rule 3)."""
    plan = _plan(request, pk)
    _editable(request, plan)
    form = forms.SubmitForm(request.POST if request.method == "POST" else None, plan=plan)
    problem = None
    if request.method == "POST" and form.is_valid():
        try:
            services.plan_submit(plan=plan, acting_user=request.user, **form.cleaned_data)
            return render(request, "brokerage/plan_submitted.jinja", {"plan": plan})
        except errors.ReasonsRequired as exc:
            if "exception_request_reasons" in form.fields:
                form.add_error("exception_request_reasons", str(exc))
            else:
                problem = str(exc)
        except errors.BrokerageError as exc:
            problem = str(exc)
    problems = problems_by_section(plan)
    blocking = [p for items in problems.values() for p in items if p.kind != OVER_BUDGET_KIND]
    return render(
        request,
        "brokerage/plan_check.jinja",
        {
            "plan": plan,
            "problems": problems,
            "blocking": blocking,
            "over_budget_by": plan.over_budget_by,
            "form": form,
            "problem": problem,
        },
    )


# --- Decisions ------------------------------------------------------------------------------------------


@login_required
def approvals(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("brokerage.view_approval_queue"):
        raise Http404
    return render(request, "brokerage/approvals.jinja", {"plans": selectors.approval_queue(request.user)})


@login_required
def plan_decide(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    if not request.user.has_perm("brokerage.approve_careplan", plan):
        raise Http404
    action = request.POST.get("action")
    approve_form = forms.ApproveForm(request.POST if action == "approve" else None, prefix="approve", plan=plan)
    return_form = forms.ReturnForm(request.POST if action == "return" else None, prefix="return")
    try:
        if action == "approve" and approve_form.is_valid():
            services.plan_approve(plan=plan, acting_user=request.user, **approve_form.cleaned_data)
            return redirect(reverse("brokerage:approvals") + "?done=approved")
        if action == "return" and return_form.is_valid():
            services.plan_return(plan=plan, acting_user=request.user, **return_form.cleaned_data)
            return redirect(reverse("brokerage:approvals") + "?done=returned")
    except errors.ReasonsRequired as exc:
        form = approve_form if action == "approve" else return_form
        field = "exception_reasons" if action == "approve" else "reasons"
        form.add_error(field if field in form.fields else None, str(exc))
    except errors.BrokerageError as exc:
        (approve_form if action == "approve" else return_form).add_error(None, str(exc))
    return render(
        request,
        "brokerage/plan_decide.jinja",
        {
            "plan": plan,
            "approve_form": approve_form,
            "return_form": return_form,
            "over_budget_by": plan.over_budget_by,
            "lines_and_contingency": plan.lines_total + plan.contingency_amount,
        },
    )


@require_POST
@login_required
def plan_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    try:
        services.plan_reopen(plan=plan, acting_user=request.user)
    except errors.BrokerageError as exc:
        raise Http404 from exc
    return redirect("brokerage:plan", pk=plan.pk)


@login_required
def plan_agreement(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    if plan.status != PlanStatus.APPROVED or not request.user.has_perm("brokerage.change_careplan", plan):
        raise Http404
    form = forms.AgreementForm(request.POST or None, plan=plan)
    if request.method == "POST" and form.is_valid():
        try:
            services.plan_record_agreement(plan=plan, acting_user=request.user, **form.cleaned_data)
            messages.success(request, "The agreement is recorded. The budget can now be set up.")
            return redirect("brokerage:plan", pk=plan.pk)
        except errors.BrokerageError as exc:
            form.add_error(None, str(exc))
    return render(request, "brokerage/plan_agreement.jinja", {"plan": plan, "form": form})


@login_required
def plan_reconsideration(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a person's request to reconsider a decision (coordinators), or decide one (approvers)."""
    plan = _plan(request, pk)
    can_record = request.user.has_perm("brokerage.change_careplan", plan)
    can_decide = request.user.has_perm("brokerage.approve_careplan", plan)
    if not (can_record or can_decide):
        raise Http404
    waiting = plan.reconsiderations.filter(decision="").first()
    action = request.POST.get("action")
    request_form = forms.ReconsiderationForm(request.POST if action == "request" else None, prefix="request")
    decide_form = forms.ReconsiderationDecisionForm(request.POST if action == "decide" else None, prefix="decide")
    try:
        if action == "request" and can_record and request_form.is_valid():
            services.reconsideration_request(plan=plan, acting_user=request.user, **request_form.cleaned_data)
            return redirect("brokerage:plan-reconsideration", pk=plan.pk)
        if action == "decide" and can_decide and waiting is not None and decide_form.is_valid():
            services.reconsideration_decide(request=waiting, acting_user=request.user, **decide_form.cleaned_data)
            return redirect("brokerage:plan-reconsideration", pk=plan.pk)
    except errors.BrokerageError as exc:
        (request_form if action == "request" else decide_form).add_error(None, str(exc))
    return render(
        request,
        "brokerage/plan_reconsideration.jinja",
        {
            "plan": plan,
            "waiting": waiting,
            "request_form": request_form,
            "decide_form": decide_form,
            "can_record": can_record and waiting is None,
            "can_decide": can_decide and waiting is not None,
            "history": plan.reconsiderations.select_related("decided_by", "recorded_by"),
        },
    )


@login_required
def plan_history(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    events = plan.transitions.select_related("by")
    return render(request, "brokerage/plan_history.jinja", {"plan": plan, "events": events})
