"""Statements: a budget's figures for a period, as an HTML page and as a tagged PDF rendered once by WeasyPrint.

`statement_data` is the one read both outputs come from, so the PDF's figures equal the page's to the penny. Every
figure is as at the end of the period (balances re-summed from the ledger up to that date, the chart cut off there),
so rendering the same period twice gives the same bytes: PDF metadata dates and the file identifier are derived from
the period and the HTML, never from the clock. `statement_generate` stores each PDF exactly once; batches of them run
in worker processes (`budgets.statement_batch`), never in a web request (DESIGN.md §3).
"""

from __future__ import annotations

import atexit
import calendar
import contextlib
import dataclasses
import datetime
import hashlib
import mimetypes
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname
from xml.etree import ElementTree

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q, Subquery, Sum
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone

from brokerage.models import ManagementType, PlanStatus
from budgets import person_selectors
from budgets.charts import ChartPoint, month_points, spend_chart_svg
from budgets.models import (
    Budget,
    BudgetAccount,
    PaymentKind,
    Recovery,
    RecoveryStatus,
    ScheduledPayment,
    Statement,
)
from budgets.selectors import FUNDERS
from budgets.services import pence
from config.formatting import format_date
from ledger.models import DEBIT_NORMAL_KINDS, Account, Transfer

TEMPLATE = "budgets/statements/statement.jinja"
READY_EMAIL = "budgets/statements/ready_email.txt"
OPEN_RECOVERIES = (RecoveryStatus.ISSUED, RecoveryStatus.RECONSIDERING)
# Plans whose budgets get a monthly statement: money is or was moving. Closed and replaced plans are left out.
LIVE_STATUSES = (
    PlanStatus.SETTING_UP,
    PlanStatus.ACTIVE,
    PlanStatus.UNDER_REVIEW,
    PlanStatus.SUSPENDED,
    PlanStatus.STOPPING,
    PlanStatus.FINAL_AUDIT,
)
MAX_PERIOD_DAYS = 366  # a longer range would be a book, not a statement (and WeasyPrint's memory grows with pages)
PERIOD_PATTERN = re.compile(r"(\d{4})-(\d{2})")
UPCOMING_LIMIT = 4


# --- Periods --------------------------------------------------------------------------------------------------


def month_period(value: str) -> tuple[datetime.date, datetime.date]:
    """A month written like 2026-10, as its first and last days; ValueError for anything else."""
    match = PERIOD_PATTERN.fullmatch(value or "")
    if not match:
        raise ValueError("Enter a month like 2026-10")
    year, month = int(match[1]), int(match[2])
    if not (1 <= month <= 12 and 2000 <= year <= 2999):
        raise ValueError("Enter a month like 2026-10")
    return datetime.date(year, month, 1), datetime.date(year, month, calendar.monthrange(year, month)[1])


def previous_month(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    last_day = today.replace(day=1) - datetime.timedelta(days=1)
    return last_day.replace(day=1), last_day


def is_whole_month(start: datetime.date, end: datetime.date) -> bool:
    return start.day == 1 and end == start.replace(day=calendar.monthrange(start.year, start.month)[1])


def describe_period(start: datetime.date, end: datetime.date) -> str:
    return f"{start:%B %Y}" if is_whole_month(start, end) else f"{format_date(start)} to {format_date(end)}"


def live_budgets(period_end: datetime.date):
    """Budgets that get a statement for the period: started by its end, plan still live."""
    return (
        Budget.objects.filter(plan__status__in=LIVE_STATUSES, start_date__lte=period_end)
        .select_related("plan__person")
        .order_by("pk")
    )


# --- The figures ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LineFigures:
    description: str
    management_type: str
    planned: int
    spent_in_period: int
    spent_to_date: int

    @property
    def remaining(self) -> int:
        return self.planned - self.spent_to_date


@dataclasses.dataclass(frozen=True)
class Holding:
    """Who holds part of the budget's money, at the start and the end of the period."""

    holder: str
    at_start: int
    at_end: int


@dataclasses.dataclass(frozen=True)
class DirectPayment:
    opening: int
    money_in: int
    money_out: int
    closing: int
    other_sources: int  # money in the account that is not the budget's (mixing), at the end

    @property
    def budget_money(self) -> int:
        return self.closing - self.other_sources


@dataclasses.dataclass(frozen=True)
class RecoveryLine:
    issued_on: datetime.date
    amount: int
    outstanding: int
    deadline: datetime.date
    status: str


@dataclasses.dataclass(frozen=True)
class StatementData:
    budget_id: int
    period_start: datetime.date
    period_end: datetime.date
    person_name: str
    nhs_number: str  # 3-3-4
    icb_name: str
    plan_version: int
    outcomes: list[str]
    budget_total: int
    funders: list[tuple[str, int]]
    lines: list[LineFigures]
    planned_total: int
    spent_in_period_total: int
    spent_to_date_total: int
    direct_payment: DirectPayment | None
    holdings: list[Holding]
    transactions: list[person_selectors.Transaction]  # oldest first
    money_in_total: int
    money_out_total: int
    upcoming: list[tuple[datetime.date, str, int]]
    contingency: int
    contingency_description: str
    surplus: int | None  # None when the budget has no direct payment
    recoveries: list[RecoveryLine]  # notices asking for money back, open at the period's end
    next_review: datetime.date | None
    coordinator_name: str
    coordinator_email: str
    chart: list[ChartPoint]
    chart_title: str
    chart_description: str
    # Dated before the period but recorded after the budget's last statement was made (a receipt entered late):
    # in the balances, but on no statement until this one.
    late_entries: list[person_selectors.Transaction] = dataclasses.field(default_factory=list)

    @property
    def remaining_total(self) -> int:
        return self.planned_total - self.spent_to_date_total

    @property
    def period_text(self) -> str:
        return describe_period(self.period_start, self.period_end)

    @property
    def title(self) -> str:
        return f"Personal health budget statement, {self.period_text}"


@dataclasses.dataclass
class _Movement:
    kind: str
    name: str
    debits_before: int = 0
    credits_before: int = 0
    debits_in: int = 0
    credits_in: int = 0

    def _signed(self, debits: int, credits: int) -> int:
        return debits - credits if self.kind in DEBIT_NORMAL_KINDS else credits - debits

    @property
    def opening(self) -> int:
        return self._signed(self.debits_before, self.credits_before)

    @property
    def in_period(self) -> int:
        return self._signed(self.debits_in, self.credits_in)

    @property
    def closing(self) -> int:
        return self.opening + self.in_period


def _movements(accounts: dict[int, Account], start: datetime.date, end: datetime.date) -> dict[int, _Movement]:
    """Each account's movements before and during the period, by account id: one query over the (account,
    effective_date) indexes, grouped by pair of accounts (a budget's money moves along a few dozen such flows at
    most), whatever the number of transfers."""
    moves = {account_id: _Movement(account.kind, account.name) for account_id, account in accounts.items()}
    ids = list(accounts)
    rows = (
        Transfer.objects.filter(phase__in=person_selectors.MOVED, effective_date__lte=end)
        .filter(Q(debit_account_id__in=ids) | Q(credit_account_id__in=ids))
        .values("debit_account_id", "credit_account_id")
        .annotate(
            before=Sum("amount", filter=Q(effective_date__lt=start)),
            during=Sum("amount", filter=Q(effective_date__gte=start)),
        )
    )
    for row in rows:
        before, during = int(row["before"] or 0), int(row["during"] or 0)
        if debited := moves.get(row["debit_account_id"]):
            debited.debits_before += before
            debited.debits_in += during
        if credited := moves.get(row["credit_account_id"]):
            credited.credits_before += before
            credited.credits_in += during
    return moves


def _chart_spends(spend_account_ids: list[int], end: datetime.date) -> list[tuple[datetime.date, int]]:
    # Net of refunds and reversals (credits to a spend account), so the chart's last bar equals "spent to date".
    ids = set(spend_account_ids)
    moves = Transfer.objects.filter(phase__in=person_selectors.MOVED, effective_date__lte=end).filter(
        Q(debit_account_id__in=ids) | Q(credit_account_id__in=ids)
    )
    return [
        (day, (amount if debit in ids else 0) - (amount if credit in ids else 0))
        for day, amount, debit, credit in moves.values_list(
            "effective_date", "amount", "debit_account_id", "credit_account_id"
        )
    ]


def statement_data(budget: Budget, period_start: datetime.date, period_end: datetime.date) -> StatementData:
    """Every figure of a budget's statement for a period, from the ledger, as at the period's end, all read from one
    snapshot of the database so they agree with each other even while money moves.

    Money recorded later but dated inside the period (a receipt entered late) changes what this returns; a stored
    PDF keeps what was known when it was made, and the web page shows the figures as they stand now."""
    if period_end < period_start:
        raise ValueError("The period must end on or after its start")
    with _one_snapshot():
        return _statement_data(budget, period_start, period_end)


@contextlib.contextmanager
def _one_snapshot():
    if connection.in_atomic_block:  # the caller's transaction decides (tests, or a service reading then writing)
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _statement_data(budget: Budget, period_start: datetime.date, period_end: datetime.date) -> StatementData:
    budget = Budget.objects.select_related(
        "plan__person__icb", "plan__care_coordinator", "plan__person__care_coordinator"
    ).get(pk=budget.pk)
    plan, person = budget.plan, budget.plan.person
    purposes = {
        row.purpose: row.account for row in BudgetAccount.objects.filter(budget=budget).select_related("account")
    }
    budget_lines = list(budget.lines.select_related("plan_line", "spend_account").order_by("pk"))
    accounts = {account.pk: account for account in purposes.values()}
    accounts.update({line.spend_account_id: line.spend_account for line in budget_lines})
    by_account = _movements(accounts, period_start, period_end)
    moves = {purpose: by_account[account.pk] for purpose, account in purposes.items()}

    lines = [
        LineFigures(
            description=line.plan_line.description,
            management_type=ManagementType(line.management_type).label.split(" (")[0],
            planned=line.annual_pence,
            spent_in_period=by_account[line.spend_account_id].in_period,
            spent_to_date=by_account[line.spend_account_id].closing,
        )
        for line in budget_lines
    ]
    if "spend:uncoded" in moves:
        uncoded = moves["spend:uncoded"]
        lines.append(LineFigures("Not coded to a line (to be checked)", "", 0, uncoded.in_period, uncoded.closing))

    direct_payment = None
    surplus = None
    if "held:direct-payment" in moves:
        held = moves["held:direct-payment"]
        direct_payment = DirectPayment(
            opening=held.opening,
            money_in=held.debits_in,  # an asset: debits are money in, credits money out
            money_out=held.credits_in,
            closing=held.closing,
            other_sources=moves["mixed-funds"].closing if "mixed-funds" in moves else 0,
        )
        # budgets.services.dp_surplus's rule, applied to the balance at the period's end rather than today's.
        annual = sum(
            line.annual_pence for line in budget_lines if line.management_type == ManagementType.DIRECT_PAYMENT
        )
        surplus = max(0, direct_payment.budget_money - annual * settings.SURPLUS_WEEKS // 52)

    holdings = [
        Holding(_holder_name(purpose, move.name), move.opening, move.closing)
        for purpose, move in sorted(moves.items(), key=lambda item: _holding_order(item[0]))
        if purpose.startswith("held:")
    ]

    # The period's money, and money dated before it but recorded since the budget's last statement was made (so
    # that statement could not show it): one query, described once. No statement before (the subquery is NULL),
    # nothing recorded late.
    last_made = (
        Statement.objects.filter(budget=budget, period_end__lt=period_start)
        .values("budget")
        .annotate(last=Max("generated_at"))
        .values("last")
    )
    recorded_late = Q(recorded_at__gt=Subquery(last_made))
    transfers = person_selectors.transactions(
        budget, until=period_end, account_ids=[account.pk for account in purposes.values()]
    ).filter(Q(effective_date__gte=period_start) | recorded_late)
    names = person_selectors.account_names(
        budget, purposes={account.pk: purpose for purpose, account in purposes.items()}, lines=budget_lines
    )
    described = person_selectors.describe(budget, transfers.order_by("effective_date", "id"), names=names)
    rows = [row for row in described if row.date >= period_start]
    late_entries = [row for row in described if row.date < period_start]

    planned_total = sum(line.planned for line in lines)
    spend_ids = [line.spend_account_id for line in budget_lines]
    spend_ids += [account.pk for purpose, account in purposes.items() if purpose.startswith("spend:")]
    coordinator = plan.care_coordinator or person.care_coordinator
    return StatementData(
        budget_id=budget.pk,
        period_start=period_start,
        period_end=period_end,
        person_name=person.full_name,
        nhs_number=person.nhs_number_display,
        icb_name=person.icb.name if person.icb_id else "",
        plan_version=plan.version,
        outcomes=list(plan.outcomes.order_by("pk").values_list("description", flat=True)),
        budget_total=budget.annual_pence,
        funders=[(label, pence(getattr(plan, field))) for field, label in FUNDERS if getattr(plan, field).amount],
        lines=lines,
        planned_total=planned_total,
        spent_in_period_total=sum(line.spent_in_period for line in lines),
        spent_to_date_total=sum(line.spent_to_date for line in lines),
        direct_payment=direct_payment,
        holdings=holdings,
        transactions=rows,
        money_in_total=sum(row.money_in for row in rows),
        money_out_total=sum(row.money_out for row in rows),
        upcoming=_upcoming(budget, period_end),
        contingency=moves["contingency"].closing if "contingency" in moves else 0,
        contingency_description=plan.contingency_description,
        surplus=surplus,
        recoveries=_recoveries_at(budget, period_end, purposes.get("recovery:owed")),
        next_review=person_selectors.next_review(budget, period_end),
        coordinator_name=coordinator.full_name if coordinator else "",
        coordinator_email=coordinator.email if coordinator else "",
        chart=month_points(budget.start_date, planned_total, _chart_spends(spend_ids, period_end), period_end),
        chart_title=f"Spending against the budget, {budget.start_date:%B %Y} to the year's end",
        chart_description="Bars show spending so far by the end of each month; the dashed line shows the budget "
        "planned by then. The same figures are in the table after the chart.",
        late_entries=late_entries,
    )


RECOVERY_POSTING = re.compile(r"recovery:(\d+):(claim|repaid|write-off|released)(:|$)")


def _recoveries_at(budget: Budget, day: datetime.date, owed: Account | None) -> list[RecoveryLine]:
    """Notices open at the end of `day`, as they stood then: the claim, less the repayments, write-offs and
    releases the ledger has dated up to that day. A notice repaid or withdrawn since still shows what was owed, and
    its status is the last one recorded by then (history), so a statement asked for later tells the same story."""
    notices = {notice.pk: notice for notice in budget.recoveries.filter(issued_on__lte=day).order_by("pk")}
    if not notices:
        return []
    claimed: dict[int, int] = {}
    settled = dict.fromkeys(notices, 0)
    released = dict.fromkeys(notices, 0)
    # Every posting about a notice moves the budget's "recovery:owed" account (read through its indexes).
    postings = (
        Transfer.objects.filter(phase__in=person_selectors.MOVED, effective_date__lte=day)
        .filter(Q(debit_account_id=owed.pk) | Q(credit_account_id=owed.pk))
        .values_list("idempotency_key", "amount")
        if owed
        else []
    )
    for key, amount in postings:
        found = RECOVERY_POSTING.match(key)
        if not found or int(found[1]) not in notices:
            continue
        pk, kind = int(found[1]), found[2]
        if kind == "claim":
            claimed[pk] = amount
        else:
            settled[pk] += amount
            released[pk] += amount if kind == "released" else 0
    statuses = dict(
        Recovery.pgh_event_model.objects.filter(
            pgh_obj_id__in=notices, pgh_created_at__lt=_local_midnight(day + datetime.timedelta(days=1))
        )
        .order_by("pgh_obj_id", "-pgh_created_at", "-pgh_id")
        .distinct("pgh_obj_id")
        .values_list("pgh_obj_id", "status")
    )
    lines = []
    for pk, notice in notices.items():
        if pk in claimed:
            amount, outstanding = claimed[pk] - released[pk], claimed[pk] - settled[pk]
        else:  # no claim in the ledger (recorded before claims were posted): the notice's own figures
            amount, outstanding = notice.amount_pence, notice.outstanding_pence
        status = statuses.get(pk, RecoveryStatus.ISSUED)
        if outstanding <= 0 or (pk not in claimed and notice.status not in OPEN_RECOVERIES):
            continue
        if status not in OPEN_RECOVERIES:  # settled or withdrawn by a later-dated posting recorded before then
            status = RecoveryStatus.ISSUED
        lines.append(RecoveryLine(notice.issued_on, amount, outstanding, notice.deadline, RecoveryStatus(status).label))
    return lines


def _local_midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())


def _upcoming(budget: Budget, after: datetime.date) -> list[tuple[datetime.date, str, int]]:
    """Payments scheduled after the period, whatever has happened to them since: the statement's view stays fixed."""
    due = (
        ScheduledPayment.objects.filter(budget=budget, due_on__gt=after)
        .select_related("holder")
        .order_by("due_on", "pk")[:UPCOMING_LIMIT]
    )
    return [
        (
            payment.due_on,
            "into your direct-payment account"
            if payment.kind == PaymentKind.DIRECT_PAYMENT
            else f"to {payment.holder.name}, to pay for your support",
            payment.amount_pence - payment.offset_pence,
        )
        for payment in due
    ]


def _holder_name(purpose: str, account_name: str) -> str:
    if purpose == "held:icb":
        return "The ICB, for support it arranges"
    if purpose == "held:direct-payment":
        return "Your direct-payment account"
    return account_name.removeprefix("Held by ")  # the third-party holder's name


def _holding_order(purpose: str) -> tuple[int, str]:
    return ({"held:direct-payment": 0, "held:icb": 1}.get(purpose, 2), purpose)


# --- HTML and PDF ----------------------------------------------------------------------------------------------


def statement_context(data: StatementData, *, large_print: bool = False) -> dict:
    """What the statement body needs, for the print document and the web page alike."""
    # Large print gets a narrower chart: the same text, scaled up to at least 16pt across the page.
    width, height = (400, 300) if large_print else (640, 220)
    chart = spend_chart_svg(
        data.chart, title=data.chart_title, description=data.chart_description, width=width, height=height
    )
    return {"data": data, "chart": chart, "large_print": large_print}


def render_statement_html(data: StatementData, large_print: bool = False) -> str:
    """The standalone print document WeasyPrint renders (not the site's layout)."""
    created = datetime.datetime.combine(data.period_end + datetime.timedelta(days=1), datetime.time()).isoformat() + "Z"
    context = {**statement_context(data, large_print=large_print), "created": created}
    return get_template(TEMPLATE, using="jinja2").render(context)


def static_roots() -> list[Path]:
    return [Path(directory).resolve() for directory in settings.STATICFILES_DIRS]


def static_base_url() -> str:
    """The base URL statement documents resolve their relative links (the bundled fonts) against."""
    return static_roots()[0].as_uri() + "/"


class RefusedResource(ValueError):
    """A statement asked for something other than one of our own static files."""


def static_file_for(url: str) -> Path:
    """The file a statement's URL points to, if it is one of our static files; RefusedResource otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise RefusedResource(f"Statements read only our own static files, not {url}")
    try:
        path = Path(url2pathname(unquote(parts.path))).resolve(strict=True)  # symlinks and .. resolved first
    except OSError as exc:
        raise RefusedResource(f"No such static file: {url}") from exc
    if not path.is_file() or not any(path.is_relative_to(root) for root in static_roots()):
        raise RefusedResource(f"Statements read only our own static files, not {url}")
    return path


def _weasyprint():
    # Imported on first use: WeasyPrint loads Pango and fonts, which web processes that never render need not pay.
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    from budgets import svg_text

    svg_text.install()
    return weasyprint, FontConfiguration, URLFetcher, URLFetcherResponse


_fetcher = None
_font_config = None


def url_fetcher():
    """WeasyPrint's fetcher, limited to our static files. Anything else stops the render (fail_on_errors): a
    statement that silently lost a resource, or fetched one from elsewhere, is worse than no statement."""
    global _fetcher
    if _fetcher is None:
        _, _, URLFetcher, URLFetcherResponse = _weasyprint()

        class StaticFilesOnly(URLFetcher):
            def fetch(self, url, headers=None):
                path = static_file_for(url)
                content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": content_type})

        _fetcher = StaticFilesOnly(allowed_protocols=("file",), allow_redirects=False, fail_on_errors=True)
    return _fetcher


def font_config():
    """One per process: WeasyPrint caches @font-face files by their rule, so each statement does not reload them."""
    global _font_config
    if _font_config is None:
        _font_config = _weasyprint()[1]()
        atexit.register(release_fonts)
    return _font_config


def release_fonts() -> None:
    """Let go of the process's font configuration, whose temporary folder of font files WeasyPrint deletes when
    it is collected: at exit that must happen before the interpreter tears its modules down, or the folder stays."""
    global _font_config
    folder = getattr(_font_config, "_folder", None)  # WeasyPrint's own attribute; None until a font is added
    _font_config = None
    _author_stylesheets.clear()  # their @font-face rules were added to the configuration let go of
    if folder:  # a render still holding the configuration would keep it alive: remove the files regardless
        shutil.rmtree(folder, ignore_errors=True)


PDF_OPTIONS = {"pdf_variant": "pdf/ua-1"}


def warm_up() -> None:
    """Render a statement of made-up figures: a process's first render loads Pango, the fonts and the template,
    which batch workers do before their first real statement rather than during it. Likewise the "statement ready"
    email's link and template: the first reverse() imports every URLconf, about 0.2 s."""
    reverse("budgets:my-statements", kwargs={"pk": 1})
    get_template(READY_EMAIL, using="jinja2")
    day = datetime.date(2026, 1, 31)
    row = person_selectors.Transaction(day, "Warm-up", "Line", 0, 100)
    data = StatementData(
        budget_id=0,
        period_start=day.replace(day=1),
        period_end=day,
        person_name="Warm Up",
        nhs_number="999 999 9999",
        icb_name="ICB",
        plan_version=1,
        outcomes=["Outcome"],
        budget_total=100,
        funders=[("ICB", 100)],
        lines=[LineFigures("Line", "Direct payment", 100, 100, 100)],
        planned_total=100,
        spent_in_period_total=100,
        spent_to_date_total=100,
        direct_payment=DirectPayment(0, 100, 100, 0, 0),
        holdings=[Holding("Holder", 0, 0)],
        transactions=[row],
        money_in_total=0,
        money_out_total=100,
        upcoming=[(day, "into your direct-payment account", 100)],
        contingency=0,
        contingency_description="",
        surplus=0,
        recoveries=[],
        next_review=day,
        coordinator_name="Coordinator",
        coordinator_email="coordinator@example.org",
        chart=month_points(day.replace(day=1), 100, [(day, 100)], day),
        chart_title="Warm-up",
        chart_description="Warm-up",
    )
    render_statement_pdf(render_statement_html(data))


# WeasyPrint's user-agent stylesheet gives every element a ::marker and five footnote and note pseudo-elements, and
# each gets its own computed style: some 2,000 styles per statement that are never drawn, about a tenth of its time.
# Ours is the same stylesheet with markers for list items only (nothing else in our documents is one) and without
# the footnote and note rules (they have none). A test checks that the PDFs come out byte for byte the same.
UNUSED_PSEUDO_ELEMENTS = {"::footnote-call", "::footnote-marker", "::note-call", "::note-marker", "::note-callback"}
_html_classes = None


def _user_agent_stylesheet():
    import tinycss2
    from weasyprint.css.counters import CounterStyle
    from weasyprint.html import UA

    rules = []
    for rule in tinycss2.parse_stylesheet(UA):
        if rule.type == "qualified-rule":
            selector = tinycss2.serialize(rule.prelude).strip()
            if selector in UNUSED_PSEUDO_ELEMENTS:
                continue
            if selector == "::marker":
                rule.prelude = tinycss2.parse_component_value_list("li::marker ")
        rules.append(rule)
    # Counter styles come from WeasyPrint's own copy (HTML._ua_counter_style); this one is only parsed into.
    return _weasyprint()[0].CSS(string=tinycss2.serialize(rules), counter_style=CounterStyle())


def html_classes():
    """WeasyPrint's HTML document with our user-agent stylesheet, and the same built from a tree parsed already."""
    global _html_classes
    if _html_classes is None:
        import cssselect2

        user_agent = _user_agent_stylesheet()

        class LeanHTML(_weasyprint()[0].HTML):
            def _ua_stylesheets(self, forms=False):
                return [user_agent]  # our documents have no forms

        class ParsedHTML(LeanHTML):
            # The attributes weasyprint.HTML.__init__ sets once it has parsed (WeasyPrint is pinned).
            def __init__(self, root):
                self.base_url = static_base_url()
                self.url_fetcher = url_fetcher()
                self.media_type = "print"
                self.stylesheets = _take_style_elements(root)
                self.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
                self.etree_element = self.wrapper_element.etree_element

            def render(self, **options):
                return super().render(stylesheets=self.stylesheets, **options)

        _html_classes = LeanHTML, ParsedHTML
    return _html_classes


# The statement's <style>, parsed once per process rather than per statement (about 3% of its time). Passed to
# WeasyPrint as a stylesheet of the user's, which ranks the same as the author's when there is no other.
_author_stylesheets: dict[str, object] = {}


def _take_style_elements(root) -> list:
    """Remove the head's <style> elements from the tree and return their stylesheets, each parsed once."""
    head = root.find("head")
    sheets = []
    for element in [] if head is None else head.findall("style"):
        if set(element.attrib) - {"type"} or element.get("type", "text/css") != "text/css":
            continue  # a media query or another type is left to WeasyPrint's own handling
        text = element.text or ""
        if text not in _author_stylesheets:
            if len(_author_stylesheets) >= 8:  # a statement and its large print; anything else is unexpected
                _author_stylesheets.clear()
            _author_stylesheets[text] = _weasyprint()[0].CSS(
                string=text,
                base_url=static_base_url(),
                url_fetcher=url_fetcher(),
                media_type="print",
                font_config=font_config(),
            )
        sheets.append(_author_stylesheets[text])
        head.remove(element)
    return sheets


def _xml_root(html: str):
    try:
        # Our own template's output, every value in it escaped: it cannot declare entities or a DTD.
        return ElementTree.fromstring(html)  # noqa: S314
    except ElementTree.ParseError:
        return None


def parsed_html(html: str, *, xhtml: bool = True):
    """WeasyPrint's document for our HTML. The statement template is well-formed XHTML that spells out what an HTML
    parser would infer (tbody, closed paragraphs), so expat (C) builds the same tree as WeasyPrint's pure-Python HTML5
    parser, in 0.3 ms rather than 15; a test checks that the PDFs are byte for byte the same. Other documents
    (xhtml=False), and anything expat refuses, such as a control character in a name, take WeasyPrint's own way."""
    lean_html, parsed = html_classes()
    root = _xml_root(html) if xhtml else None
    if root is None:
        return lean_html(string=html, base_url=static_base_url(), url_fetcher=url_fetcher())
    return parsed(root)


def render_pdf_document(html: str, *, xhtml: bool = True):
    from weasyprint.urls import FatalURLFetchingError

    try:
        return parsed_html(html, xhtml=xhtml).render(font_config=font_config())
    except FatalURLFetchingError as exc:
        # WeasyPrint's fatal error is a BaseException, which would take a worker process down with it.
        raise RefusedResource(str(exc)) from exc


def render_statement_pdf_with_pages(html: str, *, xhtml: bool = True) -> tuple[bytes, int]:
    document = render_pdf_document(html, xhtml=xhtml)
    # The identifier comes from the content, so the same statement always gives the same bytes.
    identifier = hashlib.sha256(html.encode()).hexdigest()[:32].encode()
    pdf = with_file_identifier(document.write_pdf(**PDF_OPTIONS), identifier)
    if pdf is None:  # not laid out as WeasyPrint 70 writes it: let WeasyPrint add the identifier, the slow way
        pdf = document.write_pdf(pdf_identifier=identifier, **PDF_OPTIONS)
    return pdf, len(document.pages)


# The trailer of a PDF whose cross-references are a stream (WeasyPrint's compressed output) starts at the offset
# `startxref` gives; pydyf writes an /ID just before the stream's own /Filter entry.
_STARTXREF = re.compile(rb"startxref\n(\d+)\n%%EOF\n$")
_XREF_STREAM = re.compile(rb"\d+ 0 obj\n<</Type /XRef[^>]*?(?=/Filter /FlateDecode/Length \d+>>\nstream\n)")


def with_file_identifier(pdf: bytes, identifier: bytes) -> bytes | None:
    """The PDF with the file identifier (/ID) WeasyPrint's pdf_identifier option writes: `identifier`, then a hash of
    the file. None when the PDF is not laid out as WeasyPrint 70 writes it.

    That option makes pydyf serialise and compress every object a second time only to hash them: about 9 ms of a
    statement's 130. The trailer is the file's last object and `startxref` points at its start, so an entry added
    inside its dictionary moves no other object: every offset in the file stays true."""
    end = _STARTXREF.search(pdf, max(0, len(pdf) - 40))
    trailer = _XREF_STREAM.match(pdf, int(end[1])) if end else None
    if trailer is None or b"/ID " in trailer[0] or not re.fullmatch(rb"[0-9a-f]+", identifier):
        return None
    file_hash = hashlib.md5(pdf, usedforsecurity=False).hexdigest().encode()
    return pdf[: trailer.end()] + b"/ID [(" + identifier + b") (" + file_hash + b")]" + pdf[trailer.end() :]


def render_statement_pdf(html: str, *, xhtml: bool = True) -> bytes:
    """Tagged PDF/UA-1, A4, with the title, author, language and dates the HTML declares."""
    return render_statement_pdf_with_pages(html, xhtml=xhtml)[0]


# --- Storing and notifying --------------------------------------------------------------------------------------


def statement_get(
    *, budget: Budget, period_start: datetime.date, period_end: datetime.date, large_print: bool = False
) -> Statement | None:
    return Statement.objects.filter(
        budget=budget, period_start=period_start, period_end=period_end, large_print=large_print
    ).first()


def statement_generate(
    *,
    budget: Budget,
    period_start: datetime.date,
    period_end: datetime.date,
    large_print: bool = False,
    notify: bool = False,
) -> Statement:
    """Render and store a budget's statement for the period, once. If it exists it is returned untouched."""
    return statement_generate_once(
        budget=budget, period_start=period_start, period_end=period_end, large_print=large_print, notify=notify
    )[0]


def statement_generate_once(
    *,
    budget: Budget,
    period_start: datetime.date,
    period_end: datetime.date,
    large_print: bool = False,
    notify: bool = False,
) -> tuple[Statement, bool]:
    """(the statement, whether this call made it). With `notify`, the "statement ready" email is queued in the
    same transaction as the statement's row, so a statement is never stored without it nor announced twice.

    The file is complete on disk before its row commits, and its name carries its hash, so a process killed at any
    point leaves either nothing that counts or a finished statement; two processes racing for the same statement
    both finish and the database's unique constraint keeps the first."""
    existing = statement_get(budget=budget, period_start=period_start, period_end=period_end, large_print=large_print)
    if existing is not None:
        return existing, False
    data = statement_data(budget, period_start, period_end)
    pdf, pages = render_statement_pdf_with_pages(render_statement_html(data, large_print=large_print))
    digest = hashlib.sha256(pdf).hexdigest()
    variant = "-large-print" if large_print else ""
    name = f"statements/{period_start:%Y/%m}/budget-{budget.pk}-{period_start}-{period_end}{variant}-{digest[:16]}.pdf"
    storage = Statement._meta.get_field("pdf").storage
    _write_whole(Path(storage.path(name)), pdf)
    recipients = statement_recipients(budget) if notify else []
    try:
        with transaction.atomic():
            # Nobody else can see the row before this commits, so no lock is needed to announce it once.
            statement = Statement.objects.create(
                budget=budget,
                period_start=period_start,
                period_end=period_end,
                large_print=large_print,
                pdf=name,
                sha256=digest,
                pages=pages,
                notified_at=timezone.now() if recipients else None,
            )
            _queue_ready_email(statement, budget, recipients)
        return statement, True
    except IntegrityError:
        winner = statement_get(budget=budget, period_start=period_start, period_end=period_end, large_print=large_print)
        if winner is None:
            raise
        if winner.pdf.name != name:
            storage.delete(name)
        return winner, False


def _write_whole(path: Path, content: bytes) -> None:
    """Write under a temporary name, flush to disk, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(partial, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def statement_recipients(budget: Budget) -> list[str]:
    """The person, or those who act for them: their own sign-in (or email on file) and their active
    representatives' and nominees' sign-ins."""
    person = budget.plan.person
    emails = []
    if person.user_id and person.user.is_active:
        emails.append(person.user.email)
    elif person.email:
        emails.append(person.email)
    for representative in person.representatives.filter(active=True, user__is_active=True).select_related("user"):
        emails.append(representative.user.email)
    return list(dict.fromkeys(emails))


def statement_notify(*, statement: Statement) -> bool:
    """Queue the "your statement is ready" email for a stored statement not yet announced, once: the email job and
    `notified_at` commit together. The email says only that a statement is ready: figures stay behind the sign-in."""
    with transaction.atomic():
        locked = Statement.objects.select_for_update().get(pk=statement.pk)
        if locked.notified_at is not None or not _queue_ready_email(locked, locked.budget):
            return False
        locked.notified_at = timezone.now()
        locked.save(update_fields=["notified_at"])
    statement.notified_at = locked.notified_at
    return True


def _queue_ready_email(statement: Statement, budget: Budget, recipients: list[str] | None = None) -> bool:
    """Queue the email to `recipients` (by default the statement's, read now); False if there is nobody to tell."""
    from accounts.tasks import send_email

    if recipients is None:
        recipients = statement_recipients(budget)
    if not recipients:
        return False
    period = describe_period(statement.period_start, statement.period_end)
    link = settings.SITE_URL.rstrip("/") + reverse("budgets:my-statements", kwargs={"pk": budget.pk})
    body = get_template(READY_EMAIL, using="jinja2").render(
        {"period": period, "link": link, "large_print": statement.large_print}
    )
    subject = f"Your personal health budget statement for {period} is ready"
    for email in recipients:
        send_email.defer(subject=subject, body=body, to=[email])
    return True
