"""REST API for people, plans, plan lines and transitions, plus the FHIR export of a plan.
Everything is scoped by the selectors: other people's records answer 404."""

from __future__ import annotations

from decimal import Decimal

from django.http import Http404
from djmoney.money import Money
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Organisation, OrganisationKind
from brokerage import exceptions as errors
from brokerage import selectors, services
from brokerage.fhir import plan_bundle
from brokerage.models import CarePlan, ManagementType, Outcome, Person, PlanLine
from brokerage.view_audit import AuditedList
from providers.models import Provider, Service, ServiceCategory

# The API moves a plan only through its brokerage steps. Agreement, set-up, reviews, suspension, stopping and
# closing each go through a budgets service that records what the step needs (who agreed, a decision with
# reasons, the notice period, the arrears skipped, a final audit); a bare transition here would skip all that.
API_TRANSITIONS = ("approve", "reopen", "return_to_broker", "submit")
ON_ITS_PAGE = (
    "The plan's pages make this step, as it needs more than a name ({step}); this API makes only: "
    + ", ".join(API_TRANSITIONS)
)


class PersonSerializer(serializers.ModelSerializer):
    nhs_number = serializers.CharField(source="nhs_number_display")
    icb = serializers.CharField(source="icb.name")

    class Meta:
        model = Person
        fields = [
            "id",
            "nhs_number",
            "given_name",
            "family_name",
            "date_of_birth",
            "postcode",
            "capacity",
            "cohort",
            "icb",
            "health_monitor",
            "communication_needs",
        ]


class PlanLineSerializer(serializers.ModelSerializer):
    annual_cost = serializers.SerializerMethodField()
    unit_cost = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()

    class Meta:
        model = PlanLine
        fields = [
            "id",
            "description",
            "category",
            "provider",
            "service",
            "frequency",
            "quantity",
            "unit_cost",
            "annual_cost",
            "outcome",
            "management_type",
            "third_party_holder",
            "version",
        ]

    def get_version(self, line) -> str:
        """Send it back to change the line: a line changed by someone else since is refused (409)."""
        return services.line_version(line)

    def get_annual_cost(self, line) -> str:
        return str(line.annual_cost.amount)

    def get_unit_cost(self, line) -> str:
        return str(line.unit_cost.amount)


class CarePlanSerializer(serializers.ModelSerializer):
    """A plan in a list. What this user may do next is only on one plan (CarePlanDetailSerializer): working it out
    runs the plan's checks and permission rules, too much to repeat for every plan in a page."""

    lines = PlanLineSerializer(many=True, read_only=True)
    budget = serializers.SerializerMethodField()
    lines_total = serializers.SerializerMethodField()

    class Meta:
        model = CarePlan
        fields = [
            "id",
            "person",
            "version",
            "previous",
            "status",
            "author",
            "budget",
            "lines_total",
            "payment_frequency",
            "first_review_date",
            "notice_period_days",
            "approved_by",
            "approved_at",
            "agreed_by_name",
            "agreed_on",
            "icb_signatory",
            "lines",
        ]

    def get_budget(self, plan) -> str:
        return str(plan.budget.amount)

    def get_lines_total(self, plan) -> str:
        return str(plan.lines_total.amount)


class CarePlanDetailSerializer(CarePlanSerializer):
    allowed_transitions = serializers.SerializerMethodField()

    class Meta(CarePlanSerializer.Meta):
        fields = [*CarePlanSerializer.Meta.fields, "allowed_transitions"]

    def get_allowed_transitions(self, plan) -> list[str]:
        user = self.context["request"].user
        return [t.name for t in plan.get_available_user_status_transitions(user) if t.name in API_TRANSITIONS]


class TransitionSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=API_TRANSITIONS)
    reasons = serializers.CharField(required=False, allow_blank=True, default="", max_length=3000)


class PersonViewSet(AuditedList, viewsets.ReadOnlyModelViewSet):
    serializer_class = PersonSerializer

    def get_queryset(self):
        return selectors.people_visible_to(self.request.user).select_related("icb").order_by("family_name", "id")


class CarePlanViewSet(AuditedList, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = CarePlanDetailSerializer
    person_id_of = staticmethod(lambda plan: plan.person_id)

    def get_serializer_class(self):
        return CarePlanSerializer if self.action == "list" else CarePlanDetailSerializer

    def get_queryset(self):
        return selectors.plans_visible_to(self.request.user).prefetch_related("lines").order_by("id")

    @extend_schema(request=TransitionSerializer, responses=CarePlanDetailSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request, pk=None):
        """Move the plan one step. Only transitions this user may make now are accepted (see allowed_transitions)."""
        plan = self.get_object()
        requested = request.data.get("name") if hasattr(request.data, "get") else None
        if requested in services.ACTIONS and requested not in API_TRANSITIONS:
            step = services.ACTIONS[requested]
            return Response({"detail": ON_ITS_PAGE.format(step=step)}, status=status.HTTP_400_BAD_REQUEST)
        body = TransitionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name, reasons = body.validated_data["name"], body.validated_data["reasons"]
        if name == "return_to_broker" and not reasons.strip():
            return Response({"detail": errors.REASONS_REQUIRED}, status=status.HTTP_400_BAD_REQUEST)
        try:
            if name == "approve":
                services.plan_approve(plan=plan, acting_user=request.user, exception_reasons=reasons)
            else:
                services.plan_transition(plan=plan, name=name, acting_user=request.user, reasons=reasons)
        except errors.PlanChangedMeanwhile as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except errors.BrokerageError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(plan).data)

    @extend_schema(responses={(200, "application/fhir+json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def fhir(self, request, pk=None):
        """The plan as a FHIR R4 Bundle (CarePlan, Patient, Practitioner, Organization)."""
        plan = self.get_object()
        return Response(
            plan_bundle(plan, base_url=request.build_absolute_uri("/api/fhir/")), content_type="application/fhir+json"
        )


class PlanLineChangeSerializer(serializers.Serializer):
    """A change to a line of a draft plan: what is left out stays as it is. The same checks as the plan's pages."""

    version = serializers.CharField(max_length=64, help_text="The line's `version` as last read")
    description = serializers.CharField(required=False, max_length=300)
    service = serializers.PrimaryKeyRelatedField(
        required=False, allow_null=True, queryset=Service.objects.filter(active=True, category__is_prohibited=False)
    )
    category = serializers.PrimaryKeyRelatedField(required=False, queryset=ServiceCategory.objects.filter(active=True))
    provider = serializers.PrimaryKeyRelatedField(
        required=False, allow_null=True, queryset=Provider.objects.filter(active=True)
    )
    outcome = serializers.PrimaryKeyRelatedField(required=False, queryset=Outcome.objects.all())
    management_type = serializers.ChoiceField(required=False, choices=ManagementType.choices)
    third_party_holder = serializers.PrimaryKeyRelatedField(
        required=False,
        allow_null=True,
        queryset=Organisation.objects.filter(kind=OrganisationKind.THIRD_PARTY_HOLDER),
    )
    frequency = serializers.CharField(required=False, max_length=120)
    quantity = serializers.DecimalField(
        required=False, max_digits=10, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("100000")
    )
    unit_cost = serializers.DecimalField(
        required=False, max_digits=12, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("10000000")
    )


class PlanLineViewSet(AuditedList, viewsets.ReadOnlyModelViewSet):
    serializer_class = PlanLineSerializer
    person_id_of = staticmethod(lambda line: line.plan.person_id)
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        plans = selectors.plans_visible_to(self.request.user)
        return PlanLine.objects.filter(plan__in=plans).select_related("plan").order_by("id")

    def get_object(self):
        try:
            return super().get_object()
        except PlanLine.DoesNotExist as exc:
            raise Http404 from exc

    @extend_schema(request=PlanLineChangeSerializer, responses=PlanLineSerializer)
    def partial_update(self, request, pk=None):
        """Change a line of a draft plan, by whoever may change the plan. Send the line's `version` as last read:
        a line someone else has changed since is refused (409), as is a plan that is no longer a draft."""
        line = self.get_object()
        body = PlanLineChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        values = {
            "description": data.get("description", line.description),
            "service": data.get("service", line.service),
            "category": data.get("category", line.category),
            "provider": data.get("provider", line.provider),
            "outcome": data.get("outcome", line.outcome),
            "management_type": data.get("management_type", line.management_type),
            "third_party_holder": data.get("third_party_holder", line.third_party_holder),
            "frequency": data.get("frequency", line.frequency),
            "quantity": data.get("quantity", line.quantity),
            "unit_cost": Money(data["unit_cost"], "GBP") if "unit_cost" in data else line.unit_cost,
        }
        if data.get("service") and "category" not in data:  # a directory service keeps its own category
            values["category"] = data["service"].category
        try:
            services.line_change(line=line, acting_user=request.user, seen=data["version"], **values)
        except errors.LineRefused as exc:
            return Response({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
        except errors.BrokerageError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        line.refresh_from_db()
        return Response(PlanLineSerializer(line).data)
