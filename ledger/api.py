"""REST API for finance: accounts, transfers (money-moving POSTs need an Idempotency-Key header),
account statements and the trial balance.

Transfers here are posted by hand: creating, posting, voiding or reversing one that touches a budget's account is
refused (422, error AccountMovedByOwner), because a budget's money moves only through budgets' services, which code
it to plan lines and apply the payable, funds and mixing checks."""

from __future__ import annotations

import datetime

from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ledger import exceptions as errors
from ledger import selectors, services
from ledger.models import Account, Phase, Transfer

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="Your own unique id for this money movement (1-200 characters). Repeating it returns the "
    "original result; reusing it for a different transfer is refused with 409.",
)
MISSING_KEY = "Send an Idempotency-Key header: your own unique id for this money movement"


class FinanceCanRead(BasePermission):
    message = "Only finance staff and auditors can read the ledger."

    def has_permission(self, request, view) -> bool:
        if not request.user.has_perm("ledger.view_account"):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or request.user.has_perm("ledger.add_transfer")


class AccountSerializer(serializers.ModelSerializer):
    posted_balance = serializers.IntegerField(read_only=True)
    pending_balance = serializers.IntegerField(read_only=True)
    available_balance = serializers.IntegerField(read_only=True)

    class Meta:
        model = Account
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "currency",
            "owner_ref",
            "debits_must_not_exceed_credits",
            "credits_must_not_exceed_debits",
            "closed",
            "debits_pending",
            "debits_posted",
            "credits_pending",
            "credits_posted",
            "posted_balance",
            "pending_balance",
            "available_balance",
        ]
        read_only_fields = fields


class TransferSerializer(serializers.ModelSerializer):
    class Meta:
        model = Transfer
        fields = [
            "id",
            "idempotency_key",
            "phase",
            "debit_account",
            "credit_account",
            "amount",
            "currency",
            "code",
            "reference",
            "description",
            "pending",
            "reverses",
            "group_key",
            "timeout_at",
            "effective_date",
            "recorded_at",
            "acting_user",
        ]
        read_only_fields = fields


class TransferCreateSerializer(serializers.Serializer):
    # Account ids are PostgreSQL bigints: a larger number is refused here rather than by the database.
    debit_account = serializers.IntegerField(min_value=1, max_value=services.MAX_ID)
    credit_account = serializers.IntegerField(min_value=1, max_value=services.MAX_ID)
    amount = serializers.IntegerField(min_value=1, max_value=services.MAX_AMOUNT, help_text="Pence")
    code = serializers.RegexField(services.CODE_PATTERN, help_text="For example instalment, invoice_payment")
    effective_date = serializers.DateField(required=False)
    currency = serializers.RegexField(r"^[A-Z]{3}$", default="GBP")
    reference = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    description = serializers.CharField(max_length=300, required=False, default="", allow_blank=True)
    pending = serializers.BooleanField(default=False, help_text="Reserve the amount instead of posting it")
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=366 * 86400, required=False)


class LedgerErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why nothing was recorded, for a person to read")
    error = serializers.CharField(help_text="The reason as a code, e.g. InsufficientFunds, AccountMovedByOwner")


# Refusals the ledger's services answer with (ledger_error): 409 for a key or pending transfer already used,
# 422 for a rule (no overdraft, closed account or month, a budget's account moved by hand...).
TRANSFER_RESPONSES = {
    201: TransferSerializer,
    200: TransferSerializer,
    409: LedgerErrorSerializer,
    422: LedgerErrorSerializer,
}


class ResolveSerializer(serializers.Serializer):
    amount = serializers.IntegerField(min_value=1, max_value=services.MAX_AMOUNT, required=False)
    description = serializers.CharField(max_length=300, required=False, default="", allow_blank=True)


def idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200:
        raise ValidationError({"Idempotency-Key": [MISSING_KEY]})
    return key


def respond(result: services.TransferResult) -> Response:
    response = Response(
        TransferSerializer(result.transfer).data,
        status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED,
    )
    response["Idempotent-Replayed"] = "true" if result.replayed else "false"
    return response


def ledger_error(exc: errors.LedgerError) -> Response:
    return Response({"detail": str(exc), "error": type(exc).__name__}, status=exc.status_code)


class AccountViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AccountSerializer
    permission_classes = [FinanceCanRead]

    def get_queryset(self):
        return selectors.accounts_list(owner_ref=self.request.query_params.get("owner_ref"))

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATE, description="First day (default: 1st of this month)"),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Last day (default: today)"),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses=inline_serializer(
            "AccountStatement",
            {
                "opening_balance": serializers.IntegerField(),
                "closing_balance": serializers.IntegerField(),
                "count": serializers.IntegerField(),
                "lines": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    @action(detail=True)
    def statement(self, request, pk=None):
        account = self.get_object()
        dates = StatementQuery(data=request.query_params)
        dates.is_valid(raise_exception=True)
        today = timezone.localdate()
        start = dates.validated_data.get("start") or today.replace(day=1)
        end = dates.validated_data.get("end") or today
        statement = selectors.account_statement(
            account=account, start=start, end=end, page=dates.validated_data.get("page", 1)
        )
        return Response(
            {
                "account": account.code,
                "start": start,
                "end": end,
                "opening_balance": statement.opening_balance,
                "closing_balance": statement.closing_balance,
                "count": statement.line_count,
                "page": statement.page,
                "pages": statement.page_count,
                "lines": [line.__dict__ for line in statement.lines],
            }
        )


class StatementQuery(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)
    page = serializers.IntegerField(min_value=1, max_value=100_000, required=False)

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise ValidationError({"end": ["The end date must be the same as or after the start date"]})
        return attrs


class TransferViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = TransferSerializer
    permission_classes = [FinanceCanRead]
    queryset = Transfer.objects.order_by("-id")

    @extend_schema(request=TransferCreateSerializer, responses=TRANSFER_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    def create(self, request):
        key = idempotency_key(request)
        body = TransferCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        common = {
            "key": key,
            "debit_account_id": data["debit_account"],
            "credit_account_id": data["credit_account"],
            "amount": data["amount"],
            "code": data["code"],
            "effective_date": data.get("effective_date") or timezone.localdate(),
            "currency": data["currency"],
            "reference": data["reference"],
            "description": data["description"],
            "acting_user": request.user,
            "by_hand": True,
        }
        try:
            if data["pending"]:
                timeout = data.get("timeout_seconds")
                result = services.transfer_reserve(
                    **common, timeout=datetime.timedelta(seconds=timeout) if timeout else None
                )
            else:
                result = services.transfer_post(**common)
        except errors.LedgerError as exc:
            return ledger_error(exc)
        return respond(result)

    def _pending(self) -> Transfer:
        transfer = self.get_object()
        if transfer.phase != Phase.PENDING:
            raise Http404
        return transfer

    def _follow_up(self, request, move) -> Response:
        """Post, void or reverse: an idempotency key, an optional body, one service call, by hand."""
        key = idempotency_key(request)
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            return respond(
                move(
                    key=key,
                    acting_user=request.user,
                    description=body.validated_data["description"],
                    amount=body.validated_data.get("amount"),
                    by_hand=True,
                )
            )
        except errors.LedgerError as exc:
            return ledger_error(exc)

    @extend_schema(request=ResolveSerializer, responses=TRANSFER_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"], url_path="post")
    def post_pending(self, request, pk=None):
        """Post a pending transfer, in full or in part (the rest is released)."""
        return self._follow_up(
            request, lambda amount, **kw: services.pending_post(pending=self._pending(), amount=amount, **kw)
        )

    @extend_schema(request=ResolveSerializer, responses=TRANSFER_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        """Release a pending transfer without posting anything."""
        return self._follow_up(request, lambda amount, **kw: services.pending_void(pending=self._pending(), **kw))

    @extend_schema(request=ResolveSerializer, responses=TRANSFER_RESPONSES, parameters=[IDEMPOTENCY_HEADER])
    @action(detail=True, methods=["post"])
    def reverse(self, request, pk=None):
        """Reverse a posted transfer with a mirrored one; the original is never changed."""
        return self._follow_up(
            request, lambda amount, **kw: services.transfer_reverse(transfer=self.get_object(), **kw)
        )


class TrialBalanceView(APIView):
    permission_classes = [FinanceCanRead]

    @extend_schema(
        parameters=[OpenApiParameter("as_at", OpenApiTypes.DATE, description="Default: now, from the counters")],
        responses=inline_serializer(
            "TrialBalance",
            {
                "rows": serializers.ListField(child=serializers.DictField()),
                "total_debit": serializers.IntegerField(),
                "total_credit": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request):
        query = TrialBalanceQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        balance = selectors.trial_balance(as_at=query.validated_data.get("as_at"))
        return Response(
            {
                "as_at": balance.as_at,
                "rows": [
                    {"account": row.account.code, "name": row.account.name, "debit": row.debit, "credit": row.credit}
                    for row in balance.rows
                ],
                "total_debit": balance.total_debit,
                "total_credit": balance.total_credit,
            }
        )


class TrialBalanceQuery(serializers.Serializer):
    as_at = serializers.DateField(required=False)
