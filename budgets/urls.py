from django.urls import path

from budgets import account_views, holder_views, monitoring_views, person_views, views

app_name = "budgets"

urlpatterns = [
    path("plans/<int:plan_pk>/budget/set-up/", views.budget_set_up, name="set-up"),
    path("budgets/<int:pk>/", views.budget_detail, name="budget"),
    path("budgets/<int:pk>/dedicated-account/", account_views.dedicated_account, name="dedicated-account"),
    path("finance/holders/", account_views.holders, name="holders"),
    path("finance/holders/<int:pk>/bank/", account_views.holder_bank, name="holder-bank"),
    path("my/", person_views.my_budgets, name="my-budgets"),
    path("my/budgets/<int:pk>/", person_views.my_budget, name="my-budget"),
    path("my/budgets/<int:pk>/transactions/", person_views.my_transactions, name="my-transactions"),
    path("my/budgets/<int:pk>/purchases/new/", person_views.record_purchase, name="my-purchase"),
    path("my/budgets/<int:pk>/invoices/pay/", person_views.pay_invoice, name="my-pay-invoice"),
    path("my/budgets/<int:pk>/invoices/<int:invoice_pk>/", person_views.my_invoice, name="my-invoice"),
    path("budgets/<int:pk>/receipts/<int:spend_pk>/", person_views.receipt, name="receipt"),
    path("budgets/<int:pk>/monitoring/", monitoring_views.budget_monitoring, name="monitoring"),
    path("reviews/<int:pk>/", monitoring_views.review, name="review"),
    path("my/budgets/<int:pk>/returns/", monitoring_views.my_returns, name="my-returns"),
    path("my/budgets/<int:pk>/consent/", monitoring_views.my_consent, name="my-consent"),
    path(
        "my/budgets/<int:pk>/recoveries/<int:recovery_pk>/reconsider/",
        monitoring_views.my_reconsideration,
        name="my-reconsider",
    ),
    path("held/", holder_views.held_budgets, name="held"),
    path("held/<int:pk>/", holder_views.held_budget, name="held-budget"),
    path("finance/budgets/", views.budget_list, name="budget-list"),
    path("finance/invoices/", views.invoices, name="invoices"),
    path("finance/invoices/<int:pk>/reject/", views.invoice_reject, name="invoice-reject"),
    path("budgets/<int:pk>/invoices/new/", views.invoice_record, name="invoice-record"),
    path("finance/payment-runs/", views.payment_runs, name="payment-runs"),
    path("finance/payment-runs/<int:pk>/", views.payment_run, name="payment-run"),
    path("finance/payment-runs/<int:pk>/bacs.txt", views.payment_run_file, {"kind": "bacs"}, name="payment-run-bacs"),
    path("finance/payment-runs/<int:pk>/payments.csv", views.payment_run_file, {"kind": "csv"}, name="payment-run-csv"),
]

# --- Card payments and Stripe's webhook (budgets/card_views.py, budgets/webhooks.py) -----------------------------
from budgets import card_views, cash_views, webhooks  # noqa: E402 - kept in its own block so the list above stays untouched

urlpatterns += [
    path("my/budgets/<int:pk>/pay-by-card/", card_views.card_pay, name="card-pay"),
    path("my/budgets/<int:pk>/card-payments/<int:payment_pk>/", card_views.card_payment, name="card-payment"),
    path("finance/card-payments/", card_views.finance_card_payments, name="card-payments"),
    path("finance/stripe/<int:pk>/fetch/", cash_views.stripe_import, name="stripe-import"),
    path("webhooks/stripe/", webhooks.stripe_webhook, name="stripe-webhook"),
]
# --- end card payments ---------------------------------------------------------------------------------------------

# --- Statements (budgets/statement_views.py): the person's side under /my/, staff from the budget page ------------
from budgets import statement_views  # noqa: E402 - kept in its own block so the lists above stay untouched

_STATEMENT_PAGES = [
    ("statements/", statement_views.statement_list, "statements"),
    ("statements/statement/", statement_views.statement_page, "statement"),
    ("statements/statement.pdf", statement_views.statement_pdf, "statement-pdf"),
    ("statements/request/", statement_views.statement_request, "statement-request"),
]
urlpatterns += [
    path(f"{prefix}/<int:pk>/{suffix}", view, {"side": side}, name=f"{name_prefix}{name}")
    for prefix, side, name_prefix in (("my/budgets", "my", "my-"), ("budgets", "staff", ""))
    for suffix, view, name in _STATEMENT_PAGES
]
# --- end statements ------------------------------------------------------------------------------------------------

# --- Ending a budget (budgets/ending_views.py): reductions, recovery, final audit, letters ------------------------
from budgets import ending_views  # noqa: E402 - kept in its own block so the lists above stay untouched

urlpatterns += [
    path("budgets/<int:pk>/reduction/", ending_views.reduction_notice, name="reduction-notice"),
    path("budgets/<int:pk>/recoveries/new/", ending_views.recovery_new, name="recovery-new"),
    path("budgets/<int:pk>/recoveries/<int:recovery_pk>/", ending_views.recovery_page, name="recovery"),
    path("budgets/<int:pk>/final-audit/", ending_views.final_audit_page, name="final-audit"),
    path("budgets/<int:pk>/letters/<int:letter_pk>/", ending_views.letter_page, name="letter"),
    path("budgets/<int:pk>/letters/<int:letter_pk>/letter.pdf", ending_views.letter_pdf, name="letter-pdf"),
]
# --- end ending ----------------------------------------------------------------------------------------------------

# --- Finance exports (budgets/export_views.py): spend by plan line, for every budget or one, as CSV or Excel ------
from budgets import export_views  # noqa: E402 - kept in its own block so the lists above stay untouched

urlpatterns += [
    path("finance/exports/budget-spend.<str:fmt>", export_views.spend_all_export, name="spend-export"),
    path("budgets/<int:pk>/spend.<str:fmt>", export_views.spend_export, name="budget-spend-export"),
]
# --- end finance exports -------------------------------------------------------------------------------------------

# --- Finance reports (budgets/report_views.py): the quarterly PHB return and recharges between funders ------------
from budgets import report_views  # noqa: E402 - kept in its own block so the lists above stay untouched

urlpatterns += [
    path("finance/reports/phb-return/", report_views.phb_return, name="phb-return"),
    path("finance/reports/phb-return/phb-return.csv", report_views.phb_return_csv, name="phb-return-csv"),
    path("finance/reports/recharges/", report_views.recharges, name="recharges"),
    path("finance/reports/recharges/recharges.csv", report_views.recharges_csv, name="recharges-csv"),
    path(
        "finance/reports/recharges/local-authority-payments/",
        report_views.funder_payments_page,
        name="funder-payments",
    ),
]
# --- end finance reports -------------------------------------------------------------------------------------------

# --- Checking flagged spending (budgets/monitoring_views.py): rules 9 and 10 ------------------------------------
urlpatterns += [
    path(
        "budgets/<int:pk>/monitoring/purchases/<int:purchase_pk>/",
        monitoring_views.purchase_check,
        name="purchase-check",
    ),
    path(
        "budgets/<int:pk>/monitoring/holder-spending/<int:holder_spend_pk>/",
        monitoring_views.holder_spend_check,
        name="holder-spend-check",
    ),
]
# --- end checking flagged spending ---------------------------------------------------------------------------------
