"""R5: the ledger equals a simple in-memory model over at least 10,000 random steps.

Every rule predicts the outcome from the model (applied, replayed, or which refusal) before calling the
services; after every step each account's four counters must equal the model's and debits equal credits.
"""

import datetime
import uuid

import pytest
import time_machine
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger import exceptions as errors
from ledger import services
from ledger.models import Account, AccountKind, ClosedPeriod
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.dblevel]

YEAR = 2031
EXAMPLES, STEPS = 60, 100
steps_run = {"count": 0}

# (kind, flag) for the four accounts every example starts with.
CHART = [
    (AccountKind.EQUITY, {}),
    (AccountKind.ASSET, {"credits_must_not_exceed_debits": True}),
    (AccountKind.ASSET, {"credits_must_not_exceed_debits": True}),
    (AccountKind.EXPENSE, {"debits_must_not_exceed_credits": False}),
]


class Counters:
    def __init__(self, account: Account):
        self.account = account
        self.dpend = self.dpost = self.cpend = self.cpost = 0

    def allows(self) -> bool:
        if self.account.credits_must_not_exceed_debits and self.cpost > self.dpost - self.cpend:
            return False
        return not (self.account.debits_must_not_exceed_credits and self.dpost > self.cpost - self.dpend)

    def snapshot(self):
        return (self.dpend, self.dpost, self.cpend, self.cpost)


class LedgerMachine(RuleBasedStateMachine):
    user = None

    @initialize()
    def open_chart(self):
        prefix = uuid.uuid4().hex[:8]
        self.model = []
        for index, (kind, flags) in enumerate(CHART):
            account = services.account_open(code=f"m{prefix}:{index}", name=f"Model {index}", kind=kind, **flags)
            self.model.append(Counters(account))
        self.prefix = prefix
        self.sequence = 0
        self.requests = {}  # key -> kwargs used, for replays
        self.pending = {}  # key -> (transfer, resolved)
        self.posted = {}  # key -> (transfer, reversed)
        self.closed = set(ClosedPeriod.objects.filter(month__year=YEAR).values_list("month__month", flat=True))

    def key(self) -> str:
        self.sequence += 1
        return f"{self.prefix}-{self.sequence}"

    def attempt(self, effects, month, call, *, expect_error=None):
        """Apply `effects` to the model; predict the outcome; call; compare; roll the model back on refusal."""
        steps_run["count"] += 1
        before = [c.snapshot() for c in self.model]
        for index, field, delta in effects:
            counters = self.model[index]
            setattr(counters, field, getattr(counters, field) + delta)
        if expect_error is None:
            if month in self.closed:
                expect_error = errors.PeriodClosed
            elif not all(c.allows() for c in self.model):
                expect_error = errors.InsufficientFunds
        if expect_error is not None:
            for counters, snap in zip(self.model, before, strict=True):
                counters.dpend, counters.dpost, counters.cpend, counters.cpost = snap
            with pytest.raises(expect_error):
                call()
            return None
        return call()

    @rule(
        debit=st.integers(0, 3),
        credit=st.integers(0, 3),
        amount=st.integers(1, 5_000),
        month=st.integers(1, 12),
        pending=st.booleans(),
    )
    def transfer(self, debit, credit, amount, month, pending):
        key = self.key()
        kwargs = {
            "key": key,
            "debit_account_id": self.model[debit].account.pk,
            "credit_account_id": self.model[credit].account.pk,
            "amount": amount,
            "code": "model",
            "effective_date": datetime.date(YEAR, month, 1),
        }
        call = (lambda: services.transfer_reserve(**kwargs)) if pending else (lambda: services.transfer_post(**kwargs))
        side = ("dpend", "cpend") if pending else ("dpost", "cpost")
        if debit == credit:
            self.attempt([], month, call, expect_error=errors.InvalidTransfer)
            return
        result = self.attempt([(debit, side[0], amount), (credit, side[1], amount)], month, call)
        if result is not None:
            assert not result.replayed
            self.requests[key] = (kwargs, pending)
            (self.pending if pending else self.posted)[key] = [result.transfer, False, debit, credit]

    @precondition(lambda self: any(not entry[1] for entry in self.pending.values()))
    @rule(data=st.data(), month=st.integers(1, 12), void=st.booleans())
    def resolve(self, data, month, void):
        key = data.draw(st.sampled_from(sorted(k for k, e in self.pending.items() if not e[1])))
        transfer, _resolved, debit, credit = self.pending[key]
        amount = transfer.amount if void else data.draw(st.integers(1, transfer.amount))
        effects = [(debit, "dpend", -transfer.amount), (credit, "cpend", -transfer.amount)]
        if not void:
            effects += [(debit, "dpost", amount), (credit, "cpost", amount)]
        date = datetime.date(YEAR, month, 1)
        new_key = self.key()
        if void:
            call = lambda: services.pending_void(key=new_key, pending=transfer, effective_date=date)  # noqa: E731
        else:
            call = lambda: services.pending_post(  # noqa: E731
                key=new_key, pending=transfer, amount=amount, effective_date=date
            )
        if self.attempt(effects, month, call) is not None:
            self.pending[key][1] = True

    @precondition(lambda self: any(not entry[1] for entry in self.posted.values()))
    @rule(data=st.data(), month=st.integers(1, 12))
    def reverse(self, data, month):
        key = data.draw(st.sampled_from(sorted(k for k, e in self.posted.items() if not e[1])))
        transfer, _reversed, debit, credit = self.posted[key]
        effects = [(credit, "dpost", transfer.amount), (debit, "cpost", transfer.amount)]
        new_key = self.key()
        call = lambda: services.transfer_reverse(  # noqa: E731
            key=new_key, transfer=transfer, effective_date=datetime.date(YEAR, month, 1)
        )
        if self.attempt(effects, month, call) is not None:
            self.posted[key][1] = True

    @precondition(lambda self: self.requests)
    @rule(data=st.data(), change=st.booleans())
    def replay(self, data, change):
        key = data.draw(st.sampled_from(sorted(self.requests)))
        kwargs, pending = self.requests[key]
        if change:
            kwargs = {**kwargs, "amount": kwargs["amount"] + 1}
        service = services.transfer_reserve if pending else services.transfer_post
        if change:
            self.attempt([], 0, lambda: service(**kwargs), expect_error=errors.IdempotencyConflict)
        else:
            assert self.attempt([], 0, lambda: service(**kwargs)).replayed

    @rule(month=st.integers(1, 12))
    def close_period(self, month):
        steps_run["count"] += 1
        # Closed as finance would, after the year has ended (a month still running cannot be closed).
        with time_machine.travel(datetime.datetime(YEAR + 1, 1, 2, 9, 0), tick=False):
            if month in self.closed:
                with pytest.raises(errors.PeriodAlreadyClosed):
                    services.period_close(month=datetime.date(YEAR, month, 1), acting_user=self.user)
            else:
                services.period_close(month=datetime.date(YEAR, month, 1), acting_user=self.user)
                self.closed.add(month)

    @invariant()
    def counters_equal_the_model(self):
        if not hasattr(self, "model"):
            return
        stored = {a.pk: a for a in Account.objects.filter(pk__in=[c.account.pk for c in self.model])}
        for counters in self.model:
            account = stored[counters.account.pk]
            assert (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted) == (
                counters.snapshot()
            )
        assert sum(c.dpost for c in self.model) == sum(c.cpost for c in self.model)
        assert sum(c.dpend for c in self.model) == sum(c.cpend for c in self.model)


def test_ledger_matches_the_model_over_ten_thousand_steps():
    """Rounds of examples until at least 10,000 steps have run (how many steps an example takes varies)."""
    LedgerMachine.user = UserFactory()
    steps_run["count"] = 0
    rounds = 0
    while steps_run["count"] < 10_000:
        rounds += 1
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
        assert rounds < 5, steps_run
    assert steps_run["count"] >= 10_000
