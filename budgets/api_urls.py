from rest_framework.routers import SimpleRouter

from budgets import api

router = SimpleRouter()
router.register("budgets", api.BudgetViewSet, basename="budget")
router.register("invoices", api.InvoiceViewSet, basename="invoice")
router.register("payment-runs", api.PaymentRunViewSet, basename="payment-run")
urlpatterns = router.urls
