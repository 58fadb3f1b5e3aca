from django.urls import include, path
from rest_framework.routers import SimpleRouter

from ledger import api, reconciliation_views, setup_views, views

app_name = "ledger"

router = SimpleRouter()
router.register("accounts", api.AccountViewSet, basename="account")
router.register("transfers", api.TransferViewSet, basename="transfer")

api_urlpatterns = [
    path("trial-balance/", api.TrialBalanceView.as_view(), name="api-trial-balance"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("accounts/", views.account_list, name="accounts"),
    path("accounts/<int:pk>/", views.account_statement, name="account-statement"),
    path("trial-balance/", views.trial_balance, name="trial-balance"),
    path("trial-balance.csv", views.trial_balance_csv, name="trial-balance-csv"),
    # --- exports (issue 8): CSV or Excel, one table definition each ---
    path("trial-balance.xlsx", views.trial_balance_export, {"fmt": "xlsx"}, name="trial-balance-xlsx"),
    path("accounts/<int:pk>/statement.<str:fmt>", views.statement_export, name="statement-export"),
    path("exports/", views.exports, name="exports"),
    path("exports/transfers.<str:fmt>", views.transfers_export, name="transfers-export"),
    # --- end exports ---
    # --- reconciliation (issue 8) ---
    path("reconcile/", reconciliation_views.cash_accounts, name="reconcile"),
    path("reconcile/<int:pk>/", reconciliation_views.cash_account, name="reconcile-account"),
    path("reconcile/<int:pk>/import/", reconciliation_views.statement_upload, name="reconcile-import"),
    path("reconcile/<int:pk>/auto-match/", reconciliation_views.auto_match, name="reconcile-auto-match"),
    path("reconcile/lines/<int:pk>/", reconciliation_views.statement_line, name="reconcile-line"),
    path("period-close/", reconciliation_views.period_close, name="period-close"),
    path("reconcile/add/", setup_views.cash_account_add, name="reconcile-account-add"),
    path("reconcile/<int:pk>/settings/", setup_views.cash_account_change, name="reconcile-account-change"),
    path("reconcile/layouts/", setup_views.csv_layouts, name="reconcile-layouts"),
    path("reconcile/layouts/add/", setup_views.csv_layout_edit, name="reconcile-layout-add"),
    path("reconcile/layouts/<int:pk>/", setup_views.csv_layout_edit, name="reconcile-layout-change"),
    # --- end reconciliation ---
]
