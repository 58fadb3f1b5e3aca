"""Reads of the provider directory."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from providers.models import Provider, Service, ServiceCategory


def categories_active() -> QuerySet[ServiceCategory]:
    return ServiceCategory.objects.filter(active=True)


def directory_search(*, text: str = "", category_id: int | None = None, area: str = "") -> QuerySet[Service]:
    """Active services of active providers matching a name, a category and an area."""
    services = Service.objects.filter(active=True, provider__active=True, category__is_prohibited=False)
    if text:
        services = services.filter(Q(name__icontains=text) | Q(provider__name__icontains=text))
    if category_id:
        services = services.filter(category_id=category_id)
    if area:
        services = services.filter(Q(provider__area__icontains=area) | Q(provider__postcode__istartswith=area))
    return services.select_related("provider", "category").order_by("provider__name", "name")


def provider_get(*, pk: int) -> Provider:
    return Provider.objects.prefetch_related("services__category").get(pk=pk, active=True)
