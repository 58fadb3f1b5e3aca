"""The provider directory for brokers and coordinators."""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from providers import selectors
from providers.models import Provider


def require_directory(request: HttpRequest) -> None:
    if not request.user.is_authenticated or not request.user.has_perm("providers.view_directory"):
        raise Http404


class DirectorySearchForm(forms.Form):
    q = forms.CharField(label="Provider or service name", required=False, max_length=100)
    category = forms.TypedChoiceField(label="Category", required=False, coerce=int, empty_value=None)
    area = forms.CharField(label="Area or postcode", required=False, max_length=60)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "Any category")] + [
            (c.pk, c.name) for c in selectors.categories_active().filter(is_prohibited=False)
        ]


def directory(request: HttpRequest) -> HttpResponse:
    require_directory(request)
    form = DirectorySearchForm(request.GET or None)
    criteria = form.cleaned_data if form.is_bound and form.is_valid() else {}
    services = selectors.directory_search(
        text=criteria.get("q") or "", category_id=criteria.get("category"), area=criteria.get("area") or ""
    )
    page = Paginator(services, 25).get_page(request.GET.get("page"))
    return render(request, "providers/directory.jinja", {"form": form, "page": page})


def provider_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require_directory(request)
    try:
        provider = selectors.provider_get(pk=pk)
    except Provider.DoesNotExist as exc:
        raise Http404 from exc
    return render(request, "providers/provider.jinja", {"provider": provider})
