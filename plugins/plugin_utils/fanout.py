# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer fan-out plan: which host fetches a model revision from the hub, and which host copies it from which peer,
round by round.

Controller only, pure Python (no Ansible import, no I/O). Hosts are grouped (one hub download per group: a site, a
rack, a network segment); inside a group every host that holds a verified copy at the start of a round serves one
host that does not, so the number of complete hosts doubles each round and N hosts are served in
ceil(log2(N)) rounds after the seed. Hosts that failed or are excluded are neither served nor used as sources; the
role recomputes the plan before every round from what really happened, so a host that failed in round k is simply
left out of round k+1 (re-planned).
"""

DEFAULT_GROUP = "all"


class FanoutError(ValueError):
    """The inputs cannot be planned; the message names the field."""


def _names(value, field):
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise FanoutError("%s must be a list of host names, got %r" % (field, value))
    out = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise FanoutError("%s must hold host names (non-empty strings), got %r" % (field, item))
        out.append(item)
    return out


def _groups(hosts, groups):
    """``{host: group}`` for every host; hosts not named in ``groups`` are in DEFAULT_GROUP."""
    if groups is None:
        groups = {}
    if not isinstance(groups, dict):
        raise FanoutError("groups must map host names to group names, got %r" % (groups,))
    out = {}
    for host in hosts:
        group = groups.get(host)
        if group is None or group == "":
            group = DEFAULT_GROUP
        if not isinstance(group, str):
            raise FanoutError("groups[%r] must be a string (the fan-out group), got %r" % (host, group))
        out[host] = group
    return out


def plan(hosts, complete=None, groups=None, excluded=None, seeds=None, max_fallbacks=2):
    """The whole plan from the current state.

    ``hosts``: every host of the fan-out, in inventory order (the order decides ties, so the plan is deterministic);
    ``complete``: hosts that already hold a verified copy; ``groups``: ``{host: group}`` (missing: DEFAULT_GROUP);
    ``excluded``: hosts to leave out (failed, unreachable); ``seeds``: ``{group: host}`` preferred hub downloader of a
    group (default: its first host). ``max_fallbacks``: other sources named per transfer, used when the first one
    fails or serves bad bytes.

    Returns ``{'seeds': {group: host}`` (only groups that hold no complete host: these hosts download from the hub),
    ``'rounds': [[{'receiver', 'source', 'fallbacks', 'group'}]]`` (after the seeds), ``'groups': {group: [hosts]}``,
    ``'excluded': [...]``, ``'complete': [...]``, ``'receivers': [...]`` (every host that gets the model from a peer),
    ``'lines'``: the plan in words (:func:`describe`)}.
    """
    hosts = _names(hosts, "hosts")
    if len(set(hosts)) != len(hosts):
        raise FanoutError("hosts must not repeat a name: %r" % hosts)
    known = set(hosts)
    complete = set(h for h in _names(complete, "complete") if h in known)
    excluded = set(h for h in _names(excluded, "excluded") if h in known)
    if not isinstance(max_fallbacks, int) or isinstance(max_fallbacks, bool) or max_fallbacks < 0:
        raise FanoutError("max_fallbacks must be an integer >= 0, got %r" % (max_fallbacks,))
    group_of = _groups(hosts, groups)
    seeds = seeds or {}
    if not isinstance(seeds, dict):
        raise FanoutError("seeds must map group names to host names, got %r" % (seeds,))

    members = {}
    for host in hosts:
        if host not in excluded:
            members.setdefault(group_of[host], []).append(host)

    chosen_seeds = {}
    have = {}
    for group, names in members.items():
        have[group] = [h for h in names if h in complete]
        if have[group]:
            continue
        wanted = seeds.get(group)
        if wanted is not None and wanted not in names:
            if wanted in known and wanted not in excluded:
                raise FanoutError("seeds[%r] is %r, which is not in group %r" % (group, wanted, group))
            wanted = None       # excluded or unknown: the next host of the group seeds
        seed = wanted or names[0]
        chosen_seeds[group] = seed
        have[group] = [seed]

    rounds = []
    receivers = []
    while True:
        this_round = []
        for group in sorted(members):
            sources = list(have[group])
            waiting = [h for h in members[group] if h not in have[group]]
            for index, receiver in enumerate(waiting[:len(sources)]):
                source = sources[index]
                others = [s for s in sources if s != source]
                this_round.append({"receiver": receiver, "source": source, "group": group,
                                   "fallbacks": others[:max_fallbacks]})
        if not this_round:
            break
        for transfer in this_round:
            have[transfer["group"]].append(transfer["receiver"])
            receivers.append(transfer["receiver"])
        # order by receiver in inventory order, so every host reads the round the same way
        order = dict((h, i) for i, h in enumerate(hosts))
        rounds.append(sorted(this_round, key=lambda t: order[t["receiver"]]))
    doc = {
        "seeds": chosen_seeds,
        "rounds": rounds,
        "groups": dict((g, list(n)) for g, n in members.items()),
        "excluded": [h for h in hosts if h in excluded],
        "complete": [h for h in hosts if h in complete and h not in excluded],
        "receivers": receivers,
    }
    doc["lines"] = describe(doc)
    return doc


def next_round(hosts, complete=None, groups=None, excluded=None, seeds=None, max_fallbacks=2):
    """What to do next, for a role that re-plans before every round: ``{'seeds': [hosts that download from the hub
    now], 'transfers': [the next round's transfers of groups that already hold a copy]}``. A group whose seed failed
    (excluded) gets its next host as seed."""
    full = plan(hosts, complete, groups, excluded, seeds, max_fallbacks)
    first = full["rounds"][0] if full["rounds"] else []
    return {"seeds": [full["seeds"][g] for g in sorted(full["seeds"])],
            "transfers": [t for t in first if t["group"] not in full["seeds"]]}


def round_count(hosts, complete=None, groups=None, excluded=None, seeds=None):
    """Steps the role loops over: one for the seeds' hub downloads (when a group needs one) plus the rounds."""
    doc = plan(hosts, complete, groups, excluded, seeds)
    return len(doc["rounds"]) + (1 if doc["seeds"] else 0)


def describe(plan_doc):
    """One line per step of a plan, for check mode and logs: ``seed: fan1 <- hub (group all)``,
    ``round 1: fan2 <- fan1 (fallbacks: -)``."""
    lines = []
    for group in sorted(plan_doc["seeds"]):
        lines.append("seed: %s <- hub (group %s)" % (plan_doc["seeds"][group], group))
    for index, transfers in enumerate(plan_doc["rounds"], 1):
        for t in transfers:
            lines.append("round %d: %s <- %s (fallbacks: %s)" % (
                index, t["receiver"], t["source"], ", ".join(t["fallbacks"]) or "-"))
    for host in plan_doc["complete"]:
        lines.append("complete: %s (not touched)" % host)
    for host in plan_doc["excluded"]:
        lines.append("excluded: %s" % host)
    return lines
