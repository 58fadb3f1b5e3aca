from django.urls import path

from brokerage import person_edit_views, sign_in_views, views

app_name = "brokerage"

urlpatterns = [
    path("people/", views.people, name="people"),
    path("people/add/", views.person_add, name="person-add"),
    path("people/<int:pk>/", views.person_detail, name="person"),
    path("people/<int:pk>/change/", person_edit_views.person_change, name="person-change"),
    path("people/<int:pk>/plans/new/", views.plan_start, name="plan-start"),
    path("people/<int:pk>/acting-and-paid/", views.person_acting, name="person-acting"),
    path("people/<int:pk>/representatives/add/", views.representative_add, name="person-representative-add"),
    path("people/<int:pk>/connected-people/add/", views.connected_person_add, name="person-connected-add"),
    path("representatives/<int:pk>/end/", views.representative_end, name="representative-end"),
    path("people/<int:pk>/sign-in/", sign_in_views.person_invite, name="person-invite"),
    path("representatives/<int:pk>/sign-in/", sign_in_views.representative_invite, name="representative-invite"),
    path("connected-people/<int:pk>/necessity/", views.connected_person_necessity, name="connected-person-necessity"),
    path(
        "connected-people/<int:pk>/necessity/withdraw/",
        person_edit_views.connected_person_withdraw,
        name="connected-person-withdraw",
    ),
    path("plans/<int:pk>/", views.plan_detail, name="plan"),
    path("plans/<int:pk>/needs-and-outcomes/", views.plan_needs, name="plan-needs"),
    path("plans/<int:pk>/support/", views.plan_support, name="plan-support"),
    path("plan-lines/<int:pk>/change/", views.plan_line_change, name="plan-line-change"),
    path("plans/<int:pk>/risks/", views.plan_risks, name="plan-risks"),
    path("plans/<int:pk>/check/", views.plan_check, name="plan-check"),
    path("plans/<int:pk>/decide/", views.plan_decide, name="plan-decide"),
    path("plans/<int:pk>/reopen/", views.plan_reopen, name="plan-reopen"),
    path("plans/<int:pk>/agreement/", views.plan_agreement, name="plan-agreement"),
    path("plans/<int:pk>/history/", views.plan_history, name="plan-history"),
    path("plans/<int:pk>/reconsideration/", views.plan_reconsideration, name="plan-reconsideration"),
    path("plans/<int:pk>/<slug:section>/", views.plan_section, name="plan-section"),
    path("approvals/", views.approvals, name="approvals"),
]
