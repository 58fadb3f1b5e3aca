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


NOT_EDITABLE = "This plan is {status}: only a draft can be changed. Start a new version to change it."
REASONS_REQUIRED = "Give your reasons"
NOT_ALLOWED = "You cannot {action} this plan"
NOT_READY = "This plan is not ready: {problems}"
NOT_NOW = "A plan that is {status} cannot be {action}"
CHANGED_MEANWHILE = "Someone else has just changed this plan. Look at it again before you decide."
