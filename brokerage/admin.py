from django.contrib import admin

from brokerage.models import CarePlan, ConnectedPerson, Person, PlanEvent, Representative


class RepresentativeInline(admin.TabularInline):
    model = Representative
    extra = 0


class ConnectedPersonInline(admin.TabularInline):
    model = ConnectedPerson
    extra = 0
    fk_name = "person"


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["family_name", "given_name", "nhs_number", "cohort", "icb"]
    list_filter = ["cohort", "capacity", "icb"]
    search_fields = ["family_name", "given_name", "nhs_number"]
    filter_horizontal = ["assigned_staff"]
    inlines = [RepresentativeInline, ConnectedPersonInline]


class PlanEventInline(admin.TabularInline):
    model = PlanEvent
    extra = 0
    can_delete = False
    readonly_fields = ["transition", "from_status", "to_status", "by", "at", "reasons"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CarePlan)
class CarePlanAdmin(admin.ModelAdmin):
    """Read-only here: plans change only through the plan builder and its transitions."""

    list_display = ["person", "version", "status", "author", "updated_at"]
    list_filter = ["status"]
    search_fields = ["person__family_name", "person__nhs_number"]
    inlines = [PlanEventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Record views (R9): read-only, for auditors -------------------------------------------------------------------
from brokerage.models import RecordView  # noqa: E402 - kept in its own block so the registrations above stay untouched


@admin.register(RecordView)
class RecordViewAdmin(admin.ModelAdmin):
    """Who looked at whose record. Rows are written by brokerage.view_audit and can never change."""

    list_display = ["at", "user", "person", "what", "method", "path"]
    list_filter = ["what"]
    search_fields = ["person__family_name", "person__nhs_number", "user__email", "path"]
    date_hierarchy = "at"
    list_select_related = ["user", "person"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
