# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's preflight outcome: the facts its plan gives it, and whether the host fails.

A plan is what the ``llmops.deploy.capacity_plans`` filter (or ``capacity_check``) made for the host: a judged result
with ``verdict`` (and, with candidates, ``selection``), or a host that could not be judged (``failed`` with ``msg``)
or did not answer (``unreachable`` with ``msg``). Controller only; used by the ``llmops.deploy.preflight_host``
action.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

FACT_NAMES = ("preflight_result", "preflight_selection", "preflight_chosen_model", "preflight_chosen")


def _empty_selection(plan):
    """The choice of a host that was not judged: nothing chosen, and why."""
    return {
        "chosen": None, "chosen_model": None, "chosen_candidate": None, "ranked": [], "rejected": [],
        "evaluations": [], "preferred_over": [], "scenario": None, "gpu_class": "unknown",
        "verdict": "unreachable" if plan.get("unreachable") else "failed",
        "justification": plan.get("msg") or "the check did not run",
    }


def host_facts(plan):
    """The host facts of ``plan``: ``preflight_result`` (the plan itself), ``preflight_selection`` (the choice, or an
    empty one that says why there is none), ``preflight_chosen_model`` (``''`` when none) and ``preflight_chosen``."""
    if not isinstance(plan, dict):
        raise TypeError("plan: expected a dict (a capacity_check result), got %s" % type(plan).__name__)
    selection = plan.get("selection")
    judged = isinstance(selection, dict)
    return {
        "preflight_result": plan,
        "preflight_selection": selection if judged else _empty_selection(plan),
        "preflight_chosen_model": (selection.get("chosen_model") or "") if judged else "",
        "preflight_chosen": selection.get("chosen_candidate") if judged else None,
    }


def failure(plan):
    """The reason the host fails (``None`` when it does not): it could not be judged, or preflight_fail_on named
    its verdict (both are ``failed`` plans with their ``msg``). An unreachable host does not fail here: it is
    reported as unreachable."""
    if plan.get("failed"):
        return plan.get("msg") or "the preflight check failed for this host (no reason was given)"
    return None
