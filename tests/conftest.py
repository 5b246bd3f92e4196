"""Shared pytest set-up: make the checkout importable as ``ansible_collections.llmops.deploy``."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_DIR = os.path.join(REPO_ROOT, ".collections")
FIXTURES_DIR = os.path.join(REPO_ROOT, "tests", "fixtures")

if COLLECTIONS_DIR not in sys.path:
    sys.path.insert(0, COLLECTIONS_DIR)
