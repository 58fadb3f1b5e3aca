"""The Jinja2 environment for pages: NHS.UK frontend macros plus Django's static, url and CSRF."""

from __future__ import annotations

import jinja2
from django.conf import settings
from django.contrib.messages import get_messages
from django.template.defaultfilters import pluralize
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone

from config.formatting import format_date, format_pence


def url(viewname: str, *args, **kwargs) -> str:
    return reverse(viewname, args=args or None, kwargs=kwargs or None)


# Header navigation: (permission, url name, label). Each app adds its pages here as they arrive.
NAVIGATION = [
    ("brokerage.view_people", "brokerage:people", "People"),
    ("brokerage.view_approval_queue", "brokerage:approvals", "Plans to approve"),
    ("providers.view_directory", "providers:directory", "Providers"),
    ("budgets.view_own_budget", "budgets:my-budgets", "Budget"),
    ("budgets.hold_budgets", "budgets:held", "Budgets we hold"),
    ("budgets.run_payments", "budgets:invoices", "Invoices"),
    ("budgets.run_payments", "budgets:payment-runs", "Payment runs"),
    ("ledger.view_account", "ledger:accounts", "Accounts"),
    ("ledger.view_account", "ledger:trial-balance", "Trial balance"),
]


def navigation_for(request) -> list[dict]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    items = [{"href": reverse("accounts:dashboard"), "text": "Dashboard"}]
    for permission, url_name, label in NAVIGATION:
        if user.has_perm(permission):
            href = reverse(url_name)
            items.append({"href": href, "text": label, "current": request.path == href})
    return items


def monitoring_for(user) -> dict:
    """Dashboards (in the accounts app, which imports no domain app) show what needs acting on through this."""
    from budgets.selectors import open_monitoring

    return open_monitoring(user)


def holder_work_for(user) -> dict:
    """A third-party holder's dashboard: the budgets it holds and its returns due (budgets.selectors.holder_work)."""
    from budgets.selectors import holder_work

    return holder_work(user)


def finance_work_for(user) -> dict:
    """Finance dashboards: runs, invoices and budgets to set up (budgets.selectors.finance_work)."""
    from budgets.selectors import finance_work

    return finance_work(user)


def plan_work_for(user) -> dict:
    """The dashboards' plans waiting on this user (brokerage.selectors.plan_work)."""
    from brokerage.selectors import plan_work

    return plan_work(user)


# --- Ending a budget (budgets/ending.py): the person's page shows recovery notices and letters addressed to them --
def recoveries_for(budget) -> list:
    from budgets.ending import recoveries_for as open_notices

    return open_notices(budget)


def recoveries_to_approve_for(user) -> list:
    from budgets.selectors import recoveries_to_approve

    return recoveries_to_approve(user)


def letters_for(budget) -> list:
    from budgets.ending import letters_for as budget_letters

    return budget_letters(budget)


# --- end ending --------------------------------------------------------------------------------------------------


def environment(**options) -> jinja2.Environment:
    options["loader"] = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(str(settings.BASE_DIR / "templates")),
            jinja2.PackageLoader("nhsuk_frontend_jinja"),
        ]
    )
    # ChainableUndefined lets NHS macros read optional nested params (params.x.y) without errors.
    options["undefined"] = jinja2.ChainableUndefined
    options.setdefault("autoescape", True)
    options["extensions"] = [*options.get("extensions", []), "jinja2.ext.do"]
    env = jinja2.Environment(**options)  # noqa: S701 - autoescape is set above
    env.globals.update(
        static=static,
        url=url,
        navigation_for=navigation_for,
        get_messages=get_messages,
        settings=settings,
        service_name=settings.SERVICE_NAME,
        monitoring_for=monitoring_for,
        plan_work_for=plan_work_for,
        holder_work_for=holder_work_for,
        finance_work_for=finance_work_for,
        today=timezone.localdate,
    )
    env.filters.update(pence=format_pence, nhs_date=format_date, pluralize=pluralize)
    env.globals.update(
        recoveries_for=recoveries_for, letters_for=letters_for, recoveries_to_approve_for=recoveries_to_approve_for
    )  # ending a budget (see above)
    return env
