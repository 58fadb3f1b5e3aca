from django.urls import path

from budgets import views

app_name = "budgets"

urlpatterns = [
    path("plans/<int:plan_pk>/budget/set-up/", views.budget_set_up, name="set-up"),
    path("budgets/<int:pk>/", views.budget_detail, name="budget"),
]
