"""Integration-test fixtures: the local ModelScope-compatible hub (tools/local_hub) and the real SDK against it.

Fixtures (names are stable; other integration tests rely on them):

``hub_store`` (session)
    ``pathlib.Path`` of a store directory in which the default models are generated once per session
    (``llmops-test/Qwen2-tiny-2M`` with revisions ``master`` and ``v1.0``, ``llmops-test/Llama-3.1-tiny-4M`` in three
    shards, ``llmops-test/Qwen2-tiny-2M-FP8``).
``local_hub`` (function)
    A fresh, started :class:`tools.local_hub.LocalHub` on ``127.0.0.1`` and a free port, serving the default models
    from ``hub_store``: no token, no fault, empty request log. Stopped after the test. Useful members:
    ``endpoint``, ``model_ids``, ``snapshot(model_id, revision)`` (``.files[path]`` with ``size``, ``sha256``,
    ``local_path``), ``read_file(...)``, ``requests(kind=None, model=None)``, ``clear_requests()``,
    ``add_file_fault(path, corrupt=/drop_after=/status=/slow=/delay=, times=, model=, revision=)``,
    ``add_listing_fault(unsafe_paths=/omit_sha256=/status=, ...)``, ``set_faults(spec)``, ``clear_faults()``,
    ``set_token(token)``.
``local_hub_factory`` (function)
    ``make_hub(**kwargs)`` -> a started LocalHub over ``hub_store`` (keyword arguments of LocalHub: ``token``,
    ``models``, ``faults``, ``log_path``, ``linked_etag``...). Every hub it made is stopped after the test.
``local_hub_shared`` (session)
    One hub for the whole session, for read-only tests that only download. Never set faults or a token on it; its
    request log is shared with other tests.
``modelscope_sdk`` (function)
    A :class:`tools.local_hub.sdk.ModelScopeSDK` bound to ``local_hub.endpoint`` and isolated under
    ``tmp_path / "sdk"`` (own HOME, MODELSCOPE_CACHE, MODELSCOPE_HOME; MODELSCOPE_DOWNLOAD_INTRA_CLOUD=false; no proxy;
    loopback-only network guard). ``cli(*args, token=None, env=None)`` runs the real ``modelscope`` CLI and returns a
    ``subprocess.CompletedProcess``; ``snapshot_download(model_id, token=None, env=None, **kwargs)`` runs
    ``modelscope.snapshot_download`` in a subprocess and returns a ``SnapshotResult`` (returncode, path, error, cause,
    message); ``env()`` gives the isolated environment; ``network_violations()`` lists refused non-loopback traffic.
    Tokens go through ``MODELSCOPE_API_TOKEN``, never argv.
``sdk_factory`` (function)
    ``make_sdk(endpoint, token=None)`` -> another isolated ModelScopeSDK under a fresh tmp directory.

The helpers themselves live in ``tools.local_hub.sdk`` (``modelscope_env``, ``ModelScopeSDK``, ``modelscope_bin``) so
scripts outside pytest can use them too. This conftest puts the repository root on ``sys.path`` for ``import tools``.
"""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tools.local_hub import LocalHub  # noqa: E402  (needs the path above)
from tools.local_hub.sdk import ModelScopeSDK  # noqa: E402


@pytest.fixture(scope="session")
def hub_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("local-hub-store")
    LocalHub(store).prepare()
    return store


@pytest.fixture
def local_hub(hub_store):
    hub = LocalHub(hub_store).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def local_hub_factory(hub_store):
    hubs = []

    def make_hub(**kwargs):
        hub = LocalHub(kwargs.pop("store_dir", hub_store), **kwargs).start()
        hubs.append(hub)
        return hub

    try:
        yield make_hub
    finally:
        for hub in hubs:
            hub.stop()


@pytest.fixture(scope="session")
def local_hub_shared(hub_store):
    hub = LocalHub(hub_store).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def modelscope_sdk(local_hub, tmp_path):
    return ModelScopeSDK(local_hub.endpoint, tmp_path / "sdk")


@pytest.fixture
def sdk_factory(tmp_path_factory):
    def make_sdk(endpoint, token=None):
        return ModelScopeSDK(endpoint, tmp_path_factory.mktemp("sdk"), token=token)

    return make_sdk
