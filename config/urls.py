from django.contrib import admin
from django.shortcuts import redirect, render
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from ledger import urls as ledger_urls


def home(request):
    return redirect("accounts:dashboard" if request.user.is_authenticated else "accounts:sign-in")


def static_page(template_name):
    def view(request):
        return render(request, template_name)

    return view


urlpatterns = [
    path("", home, name="home"),
    path("accessibility/", static_page("pages/accessibility.jinja"), name="accessibility"),
    path("privacy/", static_page("pages/privacy.jinja"), name="privacy"),
    path("", include("accounts.urls")),
    path("directory/", include("providers.urls")),
    path("", include("budgets.urls")),
    path("", include("brokerage.urls")),
    path("finance/ledger/", include("ledger.urls")),
    path("api/ledger/", include((ledger_urls.api_urlpatterns, "ledger-api"))),
    path("api/brokerage/", include(("brokerage.api_urls", "brokerage-api"))),
    path("api/budgets/", include(("budgets.api_urls", "budgets-api"))),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
]
