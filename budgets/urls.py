from django.urls import path

from budgets import views

app_name = "budgets"

urlpatterns = [
    path("plans/<int:plan_pk>/budget/set-up/", views.budget_set_up, name="set-up"),
    path("budgets/<int:pk>/", views.budget_detail, name="budget"),
    path("finance/invoices/", views.invoices, name="invoices"),
    path("budgets/<int:pk>/invoices/new/", views.invoice_record, name="invoice-record"),
    path("finance/payment-runs/", views.payment_runs, name="payment-runs"),
    path("finance/payment-runs/<int:pk>/", views.payment_run, name="payment-run"),
    path("finance/payment-runs/<int:pk>/bacs.txt", views.payment_run_file, {"kind": "bacs"}, name="payment-run-bacs"),
    path("finance/payment-runs/<int:pk>/payments.csv", views.payment_run_file, {"kind": "csv"}, name="payment-run-csv"),
]
