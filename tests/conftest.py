"""Shared pytest set-up: make the checkout importable as ``ansible_collections.llmops.deploy``, and order the slow
layer for parallel workers.

scripts/test.sh runs the slow layer as ``pytest -m slow -n 2 --dist loadgroup --no-loadscope-reorder``. With
``--dist loadgroup`` the units of work are decided here (``pytest_xdist_make_scheduler``; pytest-xdist's own
``xdist_group`` markers do not take effect with pytest 9, which no longer lets them rename a test): each test file is
one unit (its module-scoped fixtures, such as a started engine or a booted test host, are set up once, on one
worker), except the files in ``SPLIT_BY_CASE``, whose cases are independent units (each molecule scenario has its own
hosts and cleans up after itself). Units are handed to the workers in collection order, so the files known to take
longest come first (``LONGEST_FIRST``); any other file keeps its place after them. Nothing here changes what a test
does or asserts, only where and in which order it runs.
"""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_DIR = os.path.join(REPO_ROOT, ".collections")
FIXTURES_DIR = os.path.join(REPO_ROOT, "tests", "fixtures")

if COLLECTIONS_DIR not in sys.path:
    sys.path.insert(0, COLLECTIONS_DIR)

# Longest first: test files, or single cases of a file in SPLIT_BY_CASE (durations of one run of the slow layer in two
# workers: the molecule model_serve scenario ~500 s, the deploy-and-serve playbook ~300 s, modelscope_sdk ~250 s...).
LONGEST_FIRST = (
    "tests/molecule/test_molecule.py::test_molecule_scenario[model_serve]",
    "tests/integration/test_deploy_serve_playbook.py",
    "tests/molecule/test_molecule.py::test_molecule_scenario[modelscope_sdk]",
    "tests/integration/test_deploy_model_playbook.py",
    "tests/molecule/test_molecule.py::test_molecule_scenario[modelscope_sdk_mirror]",
    "tests/integration/test_fanout.py",
    "tests/integration/test_inference_check.py",
    "tests/playbooks/test_preflight_playbook.py",
    "tests/integration/test_download_module.py",
    "tests/molecule/test_molecule.py",
    "tests/integration/test_calibration_playbook.py",
    "tests/integration/test_local_hub_sdk.py",
)
# Files whose cases share no fixture beyond the session: each case is its own unit of work.
SPLIT_BY_CASE = ("tests/molecule/test_molecule.py",)


def _relative_path(item):
    return os.path.relpath(str(item.path), REPO_ROOT).replace(os.sep, "/")


def pytest_collection_modifyitems(items):
    """Longest units first; a stable sort, so the other files and the tests in each file keep their order."""
    rank = dict((name, index) for index, name in enumerate(LONGEST_FIRST))
    items.sort(key=lambda item: rank.get(item.nodeid, rank.get(_relative_path(item), len(rank))))


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: pytest without xdist (-p no:xdist) ignores it
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup``: one unit of work per test file, or per case in ``SPLIT_BY_CASE``; other modes as usual."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SPLIT_BY_CASE else path

    return UnitScheduling(config, log)
