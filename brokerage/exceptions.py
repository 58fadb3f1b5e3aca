"""What can go wrong with people and plans, with messages the tests reuse."""


class BrokerageError(Exception):
    """Base class: nothing was changed."""


class TransitionRefused(BrokerageError):
    """The plan cannot move that way now, or not by this user."""


class PlanNotEditable(BrokerageError):
    """Only draft plans can be changed."""


class ReasonsRequired(BrokerageError):
    """Returning, refusing and reconsidering all need written reasons."""


class PlanChangedMeanwhile(BrokerageError):
    """Someone else moved the plan on first; reload and look again."""


class RecordRefused(BrokerageError):
    """A representative, nominee or connected person cannot be recorded or changed so, or not by this user."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field  # the form field the message is about, if any


class LineRefused(TransitionRefused):
    """A support line cannot be added or changed so (another plan's outcome, a holder where none belongs...)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field  # the form field the message is about, if any


class LineChangedMeanwhile(PlanChangedMeanwhile):
    """Someone else changed or removed the support line after the page was shown: nothing was saved."""


class SignInRefused(RecordRefused):
    """The person, representative or nominee cannot be invited to sign in so, or not by this user."""


NOT_EDITABLE = "This plan is {status}: only a draft can be changed. Start a new version to change it."
REASONS_REQUIRED = "Give your reasons"
NOT_ALLOWED = "You cannot {action} this plan"
NOT_READY = "This plan is not ready: {problems}"
NOT_NOW = "A plan that is {status} cannot be {action}"
CHANGED_MEANWHILE = "Someone else has just changed this plan. Look at it again before you decide."
LINE_CHANGED_MEANWHILE = (
    "Someone else changed “{line}” while you were changing it, so nothing was saved. "
    "Check the line below and make your change again."
)
LINE_GONE = "That support line is no longer in the plan"

# People who act for the person, or are paid by them (rules 7 and 11).
NOT_YOUR_PERSON = "You cannot record who acts for or is paid by this person"
BASIS_REQUIRED = "Select why a representative acts for them"
NOMINATED_ON_REQUIRED = "Enter the date the person nominated them"
CONSENT_REQUIRED = "Enter the date the nominee consented"
DATE_IN_FUTURE = "The {what} must be today or in the past"
CONSENT_BEFORE_NOMINATION = "The date the nominee consented cannot be before the date they were nominated"
ALREADY_ENDED = "{name} has already stopped acting for this person"
ALREADY_CONNECTED = "{provider} is already recorded as connected to this person"
PROVIDER_INACTIVE = "{provider} is no longer in the directory: choose another provider"
NECESSITY_NOT_APPROVER = "Only an ICB approver for {icb} can approve that paying a connected person is necessary"
NECESSITY_OWN_RECORD = "You recorded this connection, so another approver must approve it"
NECESSITY_NOT_NEEDED = (
    "Paying {provider} needs no necessity approval: they are not a spouse, partner or in the household"
)
NECESSITY_ALREADY = "Paying {provider} was already approved on {day}"

# Invitations to sign in (brokerage.sign_ins).
SIGN_IN_NOT_YOURS = "You cannot invite people to sign in for this person"
SIGN_IN_ENDED = "{name} has stopped acting for this person, so they cannot be invited to sign in"
SIGN_IN_ALREADY = "{name} already has a sign-in, {email}. If they have not signed in yet, send the invitation again"
SIGN_IN_ALREADY_SIGNS_IN = (
    "{name} already signs in as {email}. If they have forgotten their password, they can reset it from the sign-in page"
)
SIGN_IN_NONE_YET = "{name} has no sign-in yet: invite them first"
SIGN_IN_STAFF = "{email} is a staff sign-in. Enter an email address that {name} uses for themselves"
SIGN_IN_CLOSED = "The sign-in for {email} has been closed. Enter another email address, or ask an administrator"
SIGN_IN_SOMEONE_ELSE = "{email} is already another person's own sign-in. Enter {name}'s own email address"
SIGN_IN_THE_PERSON = "{email} is {person}'s own sign-in: they cannot also act for themselves"
SIGN_IN_ACTS_ALREADY = "{email} already signs in to act for {person}"
SIGN_IN_REPRESENTED = "{name} {why}, so their representative signs in for them. Invite the representative instead"
SIGN_IN_CHANGED_MEANWHILE = "Someone else has just changed this sign-in. Look at the page again before you try again"
