from django.contrib import admin

from providers.models import Provider, Service, ServiceCategory


@admin.register(ServiceCategory)
class ServiceCategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "is_prohibited", "requires_registration", "active"]
    list_filter = ["is_prohibited", "requires_registration", "active"]
    search_fields = ["name"]


class ServiceInline(admin.TabularInline):
    model = Service
    extra = 0


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "area", "cqc_registration", "active"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "area", "ods_code", "cqc_registration"]
    inlines = [ServiceInline]
