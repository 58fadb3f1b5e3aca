from django.urls import path

from budgets import account_views, holder_views, views

app_name = "budgets"

urlpatterns = [
    path("plans/<int:plan_pk>/budget/set-up/", views.budget_set_up, name="set-up"),
    path("budgets/<int:pk>/", views.budget_detail, name="budget"),
    path("budgets/<int:pk>/dedicated-account/", account_views.dedicated_account, name="dedicated-account"),
    path("finance/holders/", account_views.holders, name="holders"),
    path("finance/holders/<int:pk>/bank/", account_views.holder_bank, name="holder-bank"),
    path("held/", holder_views.held_budgets, name="held"),
    path("held/<int:pk>/", holder_views.held_budget, name="held-budget"),
    path("finance/invoices/", views.invoices, name="invoices"),
    path("budgets/<int:pk>/invoices/new/", views.invoice_record, name="invoice-record"),
    path("finance/payment-runs/", views.payment_runs, name="payment-runs"),
    path("finance/payment-runs/<int:pk>/", views.payment_run, name="payment-run"),
    path("finance/payment-runs/<int:pk>/bacs.txt", views.payment_run_file, {"kind": "bacs"}, name="payment-run-bacs"),
    path("finance/payment-runs/<int:pk>/payments.csv", views.payment_run_file, {"kind": "csv"}, name="payment-run-csv"),
]
