"""Test helper: the header of a safetensors file whose tensors are laid out one after another.

Shared by the unit tests that hand-make safetensors files (tests/ is on sys.path through tests/conftest.py).
"""

from ansible_collections.llmops.deploy.plugins.module_utils.safetensors_header import DTYPE_BITS


def tensor_layout(tensors):
    """[(name, dtype, shape)] -> (header dict with dtype/shape/data_offsets per tensor, total data bytes)."""
    header, offset = {}, 0
    for name, dtype, shape in tensors:
        numel = 1
        for dim in shape:
            numel *= dim
        nbytes = numel * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    return header, offset
