from django.urls import include, path
from rest_framework.routers import SimpleRouter

from ledger import api, views

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
]
