from django.urls import path

from budgets import account_views, holder_views, person_views, views

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
    path("held/", holder_views.held_budgets, name="held"),
    path("held/<int:pk>/", holder_views.held_budget, name="held-budget"),
    path("finance/invoices/", views.invoices, name="invoices"),
    path("budgets/<int:pk>/invoices/new/", views.invoice_record, name="invoice-record"),
    path("finance/payment-runs/", views.payment_runs, name="payment-runs"),
    path("finance/payment-runs/<int:pk>/", views.payment_run, name="payment-run"),
    path("finance/payment-runs/<int:pk>/bacs.txt", views.payment_run_file, {"kind": "bacs"}, name="payment-run-bacs"),
    path("finance/payment-runs/<int:pk>/payments.csv", views.payment_run_file, {"kind": "csv"}, name="payment-run-csv"),
]
