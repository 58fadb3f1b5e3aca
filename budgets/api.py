"""REST API for budgets (scoped like their plans), invoices and payment runs (finance). POSTs that move money
need an Idempotency-Key header; paying is idempotent in any case (each payment has its own ledger key)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from brokerage import selectors as plan_selectors
from brokerage.view_audit import AuditedList
from budgets import invoices as invoice_services
from budgets import payment_runs as runs
from budgets import selectors
from budgets.models import Budget, Invoice, PaymentRun
from budgets.services import BudgetError

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="Your own unique id for this money movement",
)


class IsFinance(BasePermission):
    """Finance staff read and act; auditors read."""

    message = "Only finance staff can do this."

    def has_permission(self, request, view) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS") and request.user.has_perm("ledger.view_account"):
            return True
        return request.user.has_perm("budgets.run_payments")


def require_idempotency_key(request) -> None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200:
        raise ValidationError({"Idempotency-Key": ["Send an Idempotency-Key header for every payment"]})


def refused(exc: BudgetError) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class LineFiguresSerializer(serializers.Serializer):
    description = serializers.CharField()
    management_type = serializers.CharField()
    planned = serializers.IntegerField(help_text="Pence")
    committed = serializers.IntegerField(help_text="Pence")
    spent = serializers.IntegerField(help_text="Pence")
    remaining = serializers.IntegerField(help_text="Pence")
    account_code = serializers.CharField()


class BudgetSerializer(serializers.ModelSerializer):
    lines = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = ["id", "plan", "start_date", "annual_pence", "first_paid_on", "lines"]

    @extend_schema(exclude=True)
    def get_lines(self, budget) -> list[dict]:
        return LineFiguresSerializer(selectors.line_figures(budget), many=True).data


class BudgetViewSet(AuditedList, viewsets.ReadOnlyModelViewSet):
    serializer_class = BudgetSerializer
    person_id_of = staticmethod(lambda budget: budget.plan.person_id)

    def get_queryset(self):
        budgets = (
            Budget.objects.filter(plan__in=plan_selectors.plans_visible_to(self.request.user))
            .select_related("plan")
            .order_by("id")
        )
        return selectors.budgets_with_lines(budgets)


class InvoiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invoice
        fields = [
            "id",
            "budget_line",
            "provider",
            "invoice_number",
            "invoice_date",
            "amount_pence",
            "status",
            "recorded_by",
            "approved_by",
        ]
        read_only_fields = ["provider", "status", "recorded_by", "approved_by"]


class InvoiceViewSet(AuditedList, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = InvoiceSerializer
    permission_classes = [IsFinance]
    queryset = Invoice.objects.select_related("budget_line__budget__plan").order_by("-id")
    person_id_of = staticmethod(lambda invoice: invoice.budget_line.budget.plan.person_id)

    def create(self, request, *args, **kwargs):
        body = InvoiceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            invoice = invoice_services.invoice_record(
                line=data["budget_line"],
                provider=data["budget_line"].plan_line.provider,
                invoice_number=data["invoice_number"],
                invoice_date=data["invoice_date"],
                amount_pence=data["amount_pence"],
                acting_user=request.user,
            )
        except BudgetError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(InvoiceSerializer(invoice).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=InvoiceSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        try:
            return Response(
                InvoiceSerializer(
                    invoice_services.invoice_approve(invoice=self.get_object(), acting_user=request.user)
                ).data
            )
        except BudgetError as exc:
            return refused(exc)


class PaymentRunSerializer(serializers.ModelSerializer):
    total_pence = serializers.IntegerField(read_only=True)
    items = serializers.SerializerMethodField()
    totals = serializers.SerializerMethodField()

    class Meta:
        model = PaymentRun
        fields = ["id", "run_date", "status", "author", "approved_by", "total_pence", "totals", "items"]
        read_only_fields = ["status", "author", "approved_by"]

    @extend_schema(exclude=True)
    def get_items(self, run) -> list[dict]:
        return [
            {
                "payee": item.payee_name,
                "amount_pence": item.amount_pence,
                "reference": item.reference,
                "method": item.method,
                "paying_for": item.paying_for,
                "paid": item.paid_at is not None,
                "failure": item.failure,
            }
            for item in run.items.all()
        ]

    @extend_schema(exclude=True)
    def get_totals(self, run) -> dict:
        totals = selectors.run_totals(run, items=run.items.all())
        return {"by_type": totals.by_type, "by_funder": totals.by_funder, "by_method": totals.by_method}

    def validate_run_date(self, value):
        if problem := runs.run_date_problem(value):
            raise serializers.ValidationError(problem)
        return value


class TakeOutSerializer(serializers.Serializer):
    item = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        help_text="The id of the run's item to take out: one the run tried and could not pay (its `failure` says why)",
    )


class RefusalSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why nothing changed, for a person to read")


def run_data(run: PaymentRun) -> dict:
    """A run as the API shows it, read again with its items after a service changed it."""
    return PaymentRunSerializer(selectors.payment_runs_with_items().get(pk=run.pk)).data


class PaymentRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = PaymentRunSerializer
    permission_classes = [IsFinance]
    queryset = selectors.payment_runs_with_items()

    def create(self, request, *args, **kwargs):
        body = PaymentRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run_date = body.validated_data["run_date"]
        if not runs.anything_due(run_date):
            return Response({"detail": runs.NOTHING_DUE.format(day=run_date)}, status=status.HTTP_409_CONFLICT)
        try:
            run, left_out = runs.payment_run_create(run_date=run_date, acting_user=request.user)
        except BudgetError as exc:
            return refused(exc)
        data = run_data(run)
        data["left_out_without_bank_details"] = len(left_out)
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=PaymentRunSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        try:
            return Response(run_data(runs.payment_run_approve(run=self.get_object(), acting_user=request.user)))
        except BudgetError as exc:
            return refused(exc)

    @extend_schema(request=None, responses=PaymentRunSerializer, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        require_idempotency_key(request)
        try:
            return Response(run_data(runs.payment_run_post(run=self.get_object(), acting_user=request.user)))
        except BudgetError as exc:
            return refused(exc)

    @extend_schema(
        summary="Take a payment the run could not pay out of the run",
        description="As the run page's 'Take out of this run': only for an approved run, and only an item the run "
        "tried and could not pay (the budget ran short, the payee's account refused it) and that was not sent by "
        "Stripe transfer. Nothing was posted for it, so the ledger does not change; what it paid for is free again "
        "(an invoice can be rejected or paid by a later run, an instalment waits for the next run). The item's last "
        "state, naming who took it out and why, stays in its history. Answers the run as it is now, with `taken_out` "
        "(the item's id, what it paid for and the record kept); refusals answer 409 with the reason.",
        request=TakeOutSerializer,
        responses={200: PaymentRunSerializer, 400: OpenApiTypes.OBJECT, 409: RefusalSerializer},
    )
    @action(detail=True, methods=["post"], url_path="take-out", url_name="take-out")
    def take_out(self, request, pk=None):
        run = self.get_object()  # 404 before anything else, for a run that is not there
        body = TakeOutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            removed = runs.payment_run_item_remove(
                run=run, item_id=body.validated_data["item"], acting_user=request.user
            )
        except BudgetError as exc:
            return refused(exc)
        data = run_data(run)
        data["taken_out"] = {"item": removed.pk, "paying_for": removed.paying_for, "record": removed.failure}
        return Response(data)
