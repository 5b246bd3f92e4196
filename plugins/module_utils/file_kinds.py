# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kind of file a repository path is: pickled weights (loading them can execute code) or code.

Standard library only (runs on targets with Python >= 3.8); only names are looked at, nothing is opened.
"""

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".pyx", ".so", ".dylib", ".dll", ".exe", ".sh", ".bash", ".bat",
                 ".cmd", ".ps1", ".js", ".ipynb")


def is_pickle_file(path):
    """Weights stored as Python pickles (loading them can execute code)."""
    return path.lower().endswith(PICKLE_SUFFIXES)


def is_code_file(path):
    """Repository files that are code (Python, native libraries, scripts, notebooks)."""
    return path.lower().endswith(CODE_SUFFIXES)


def classify_paths(paths):
    """``{'pickle_files': [...], 'code_files': [...]}`` for a list of repository paths (sorted)."""
    paths = sorted(paths)
    return {
        "pickle_files": [p for p in paths if is_pickle_file(p)],
        "code_files": [p for p in paths if is_code_file(p)],
    }
