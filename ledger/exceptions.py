"""What can go wrong when moving money, each with a message a finance officer can act on."""


class LedgerError(Exception):
    """Base class: the transfer was refused and nothing was recorded."""

    status_code = 422


class InvalidTransfer(LedgerError):
    """The request itself is malformed (amount, accounts, key, code)."""


class AccountNotFound(LedgerError):
    """An account named in the transfer does not exist."""

    status_code = 404


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before for a different transfer."""

    status_code = 409


class InsufficientFunds(LedgerError):
    """The transfer would take an account past its no-overdraft limit."""


class CurrencyMismatch(LedgerError):
    """The transfer's currency differs from one of its accounts'."""


class AccountClosed(LedgerError):
    """One of the accounts is closed to new transfers."""


class PeriodClosed(LedgerError):
    """The transfer is dated inside a closed month."""


class PendingInvalid(LedgerError):
    """The pending transfer cannot be posted, voided or expired as asked."""


class PendingAlreadyResolved(LedgerError):
    """The pending transfer was already posted, voided or expired."""

    status_code = 409


class ReversalInvalid(LedgerError):
    """A reversal must mirror a posted transfer, once."""


class AccountMovedByOwner(LedgerError):
    """A tool that posts by hand named an account that only its owner's app moves (a budget's)."""


class PeriodNotEnded(LedgerError):
    """The month has not ended yet, so it cannot be closed."""

    status_code = 409


class PeriodAlreadyClosed(LedgerError):
    """The month is already closed."""

    status_code = 409


IDEMPOTENCY_CONFLICT = "The idempotency key {key} was already used for a different transfer"
INSUFFICIENT_FUNDS = "Account {code} does not have enough money for this transfer"
ALREADY_RESOLVED = "The pending transfer {key} has already been posted, voided or expired"
ALREADY_REVERSED = "Transfer {key} has already been reversed"
MOVED_BY_BUDGET = (
    "Account {code} belongs to a budget: record its money on the budget's pages, where the plan-line and mixing "
    "checks apply"
)
