# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP client options of every module that talks to a hub (module_utils ``hub_client.HUB_CLIENT_ARGSPEC``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  validate_certs:
    description:
      - Verify the hub's TLS certificate. Set to V(false) only for a hub you reach over a network you trust.
      - Applies to the module's own requests and to the SDK subprocess of M(llmops.deploy.modelscope_download).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA certificates that sign the hub's certificate (an internal mirror with a private CA).
      - Used by the module's own requests and handed to the SDK subprocess in its environment (C(REQUESTS_CA_BUNDLE),
        C(SSL_CERT_FILE)), never on a command line.
    type: path
  use_proxy:
    description:
      - Use the proxy of the environment (C(https_proxy), C(http_proxy), C(no_proxy)), as every Ansible network module
        does; set it with the task's or play's C(environment). V(false) ignores every proxy variable, for the module
        and for the SDK subprocess.
    type: bool
    default: true
  timeout:
    description:
      - Seconds per HTTP request of the module (connect and each read).
      - The SDK subprocess of M(llmops.deploy.modelscope_download) waits as long for the next bytes of a file before
        it counts the request as failed (C(MODELSCOPE_DOWNLOAD_TIMEOUT)).
    type: int
    default: 60
  retries:
    description:
      - How many times a request that fails with a server error (5xx, 429) or a network error is sent again, after
        1, 2, 4... seconds, or after the time a C(Retry-After) header asks for; never more than 60 seconds apart.
        V(0) fails at the first error. At most V(10).
      - Applies to the module's own requests and, per file, to the SDK subprocess of
        M(llmops.deploy.modelscope_download) (C(MODELSCOPE_DOWNLOAD_MAX_RETRIES), which resumes a file where it
        stopped). Other statuses (401, 403, 404) fail at once.
    type: int
    default: 3
notes:
  - Redirects are followed (at most 5); the token goes only to the origin it was given for, compared by scheme, host
    and port. A redirect to another origin, another port of the same host included, is followed without it.
"""
