# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small files the unit tests write into a model directory, and their manifest entries.

Shared by the module_utils tests of the marker, fetch planning and the model-directory check (tests/ is on sys.path
through tests/conftest.py).
"""

import hashlib
import json
import os
import struct

from safetensors_layout import tensor_layout


def sha(data):
    return hashlib.sha256(data).hexdigest()


def write(root, rel, data):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def entry(rel, data):
    return {"path": rel, "size": len(data), "sha256": sha(data)}


def safetensors(tensors):
    header, offset = tensor_layout(tensors)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset
