from rest_framework.routers import SimpleRouter

from brokerage import api

router = SimpleRouter()
router.register("people", api.PersonViewSet, basename="person")
router.register("plans", api.CarePlanViewSet, basename="plan")
router.register("plan-lines", api.PlanLineViewSet, basename="plan-line")
urlpatterns = router.urls
