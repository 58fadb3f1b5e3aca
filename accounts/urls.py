from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("sign-in/", views.SignInView.as_view(), name="sign-in"),
    path("sign-in/code/", views.sign_in_code, name="sign-in-code"),
    path("account/two-factor/", views.two_factor_setup, name="two-factor"),
    path("sign-out/", views.SignOutView.as_view(), name="sign-out"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("password-reset/sent/", views.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("password-reset/complete/", views.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
    path("account/invitation/<uidb64>/<token>/", views.InvitationView.as_view(), name="invitation"),
    path("session/extend/", views.session_extend, name="session-extend"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/<slug:role>/", views.role_dashboard, name="role-dashboard"),
]
