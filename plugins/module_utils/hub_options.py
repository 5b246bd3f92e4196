# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client options of every hub module (doc fragment ``llmops.deploy.hub_client``): their argument spec and
their check, with no network import.

A module that takes these options but talks to the hub only in some of its states (``model_fanout``: only
``state=manifest``, never a peer receive) builds its argument spec from here and imports the HTTP client
(module_utils ``hub_client``, on ``ansible.module_utils.urls``) only on the path that uses it, so the other states do
not pay for loading it. ``hub_client`` re-exports both names; modules that always talk to the hub import them from
there.
"""

import os

#: The client options of every hub module (doc fragment ``llmops.deploy.hub_client``).
HUB_CLIENT_ARGSPEC = dict(
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    use_proxy=dict(type="bool", default=True),
    timeout=dict(type="int", default=60),
    retries=dict(type="int", default=3),
)

#: The most retries the ``retries`` option accepts: with a doubling backoff (1, 2, 4... seconds, at most 60 apart)
#: ten retries already wait five minutes in all.
MAX_RETRIES = 10


def check_client_options(params):
    """Problems of the client options of a module's params (empty when they are valid)."""
    problems = []
    timeout = params.get("timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        problems.append("timeout %r is not valid: expected an integer number of seconds >= 1" % (timeout,))
    retries = params.get("retries", HUB_CLIENT_ARGSPEC["retries"]["default"])
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        problems.append("retries %r is not valid: expected an integer from 0 to %d" % (retries, MAX_RETRIES))
    ca_path = params.get("ca_path")
    if ca_path and not os.path.isfile(ca_path):
        problems.append("ca_path %r is not valid: expected a readable PEM file of CA certificates" % (ca_path,))
    return problems
