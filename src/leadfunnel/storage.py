"""What a storage adapter is written with: the repository port, the change sets it
applies, the rows its reports return, and the rules every adapter shares, so that a
third-party adapter answers as leadfunnel's own do.

An adapter subclasses :class:`Repository` and implements its abstract methods (see
``docs/storage.md``); :class:`leadfunnel.testing.RepositoryContract` checks it. The
functions here are the shared rules, the ones :class:`~leadfunnel.InMemoryRepository`
and :class:`~leadfunnel.SqlRepository` use:

* :func:`identity_keys` are the keys a person claims (``email:...``, ``phone:...``,
  their ``other_emails`` and ``other_phones`` too), :func:`holds_keys` whether a record
  claims them (a converted lead hands them to its contact), :func:`is_avoided` whether
  a record is on the avoid list (its keys are then avoided, not merely taken);
* :func:`funnel_steps` are the funnel steps an event reaches, which ``step_counts``,
  ``stage_times`` and the rep lists count; :func:`lead_entered` is when a lead entered
  its follow-up cadence, from which ``follow_up_candidates`` counts its touches;
* :func:`where_values` checks and converts a ``where=`` filter as the stores compare it
  (by value), :func:`trait_key` is a person's company, last name or e-mail domain as
  ``people_like`` compares them;
* :func:`check_grouping` and :func:`check_rep_list` refuse an unknown grouping or rep
  list with the error the facade promises; :func:`month_of` is a step's group by month
  (``"0001-01"``: four-digit years, UTC);
* :func:`text_filter` is a list filter's value (``owner``, ``source``, ``setter``,
  ``tag``) as the stores compare it, or :data:`NO_VALUE` where no record can match, and
  :func:`missing_value` what a record stored before its model gained a field reads as;
* :func:`read_changed` is the :class:`~leadfunnel.ConcurrencyError` of a change whose
  ``touches_read``, ``events_read`` or ``deals_read`` no longer hold, and
  :func:`refuse_suppressed` raises the :class:`~leadfunnel.AvoidListedError` of a
  change storing a key of ``ChangeSet.unsuppressed`` that is suppressed, given the
  adapter's look-up of suppressions inside its commit.
"""

from __future__ import annotations

from ._channels import lead_entered
from ._lifecycle import FUNNEL_STEPS, TIMED_STEPS, funnel_steps
from ._models import holds_keys, identity_keys, is_avoided
from ._periods import month_of
from ._repository import (
    NO_VALUE,
    ChangeSet,
    Cursor,
    FollowUpCandidate,
    FollowUpStats,
    GroupBy,
    MergeLog,
    Move,
    RepListKind,
    RepListRow,
    Repository,
    StageTime,
    StepCount,
    Suppression,
    check_grouping,
    check_rep_list,
    missing_value,
    read_changed,
    refuse_suppressed,
    text_filter,
    trait_key,
    where_values,
)

__all__ = [
    "FUNNEL_STEPS",
    "NO_VALUE",
    "TIMED_STEPS",
    "ChangeSet",
    "Cursor",
    "FollowUpCandidate",
    "FollowUpStats",
    "GroupBy",
    "MergeLog",
    "Move",
    "RepListKind",
    "RepListRow",
    "Repository",
    "StageTime",
    "StepCount",
    "Suppression",
    "check_grouping",
    "check_rep_list",
    "funnel_steps",
    "holds_keys",
    "identity_keys",
    "is_avoided",
    "lead_entered",
    "missing_value",
    "month_of",
    "read_changed",
    "refuse_suppressed",
    "text_filter",
    "trait_key",
    "where_values",
]
