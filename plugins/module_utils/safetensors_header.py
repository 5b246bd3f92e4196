# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safetensors headers: dtype and shape of every tensor, parameter counts per dtype, and the comparison of what the
weights hold with what a model's name and precision claim.

Standard library only (runs on targets with Python >= 3.8). A safetensors file is an 8-byte little-endian header
length N, N bytes of JSON (``{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the tensor data; offsets are relative to the start of the data. Only the header is read, never the data, and
nothing in the file is executed.
"""

import json
import os
import struct

# Bits per element of every dtype safetensors defines.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

# Storage dtype -> canonical precision (as plugins/module_utils/precision.py names them), where there is one.
DTYPE_PRECISION = {
    "F16": "fp16", "BF16": "bf16", "F32": "fp32", "F8_E5M2": "fp8", "F8_E4M3": "fp8", "I8": "int8", "U8": "int8",
}

# The safetensors reference implementation refuses headers larger than this.
MAX_HEADER_BYTES = 100 * 1024 * 1024

# Tensors that describe a quantization (scales, zero points, permutations) rather than hold parameters.
_AUX_SUFFIXES = (".qzeros", ".scales", ".g_idx", ".weight_scale", ".weight_scale_inv", ".input_scale",
                 ".weight_zero_point", ".input_zero_point", ".absmax", ".quant_map", ".nested_absmax",
                 ".nested_quant_map", ".SCB", ".weight_format")
_AUX_MARKERS = (".quant_state.",)


class HeaderError(ValueError):
    """A safetensors header that cannot be trusted (truncated, malformed, inconsistent)."""


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise HeaderError("duplicate key %r in the header" % key)
        result[key] = value
    return result


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_header_json(raw, header_size=None, data_size=None):
    """Parse and check the JSON part of a header.

    ``data_size`` (bytes after the header) enables the bounds and coverage checks: every tensor inside the data, no
    two overlapping, and the data exactly covered (no truncation, no trailing bytes).
    Returns ``{'header_size', 'tensors': {name: {'dtype', 'shape', 'offsets'}}, 'metadata', 'data_bytes',
    'expected_file_size'}``.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError("the header is not UTF-8")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except HeaderError:
        raise
    except ValueError as exc:
        raise HeaderError("the header is not valid JSON: %s" % exc)
    if not isinstance(doc, dict):
        raise HeaderError("the header is not a JSON object")
    metadata = doc.pop("__metadata__", None)
    if metadata is not None and not isinstance(metadata, dict):
        raise HeaderError("__metadata__ is not an object")
    tensors = {}
    spans = []
    for name, info in doc.items():
        if not isinstance(info, dict):
            raise HeaderError("tensor %r: entry is not an object" % name)
        dtype = info.get("dtype")
        if dtype not in DTYPE_BITS:
            raise HeaderError("tensor %r: unknown dtype %r (known: %s)" % (name, dtype, ", ".join(sorted(DTYPE_BITS))))
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise HeaderError("tensor %r: shape %r is not a list of non-negative integers" % (name, shape))
        offsets = info.get("data_offsets")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise HeaderError("tensor %r: data_offsets %r is not [begin, end] with 0 <= begin <= end" % (
                name, offsets))
        numel = 1
        for dim in shape:
            numel *= dim
        bits = numel * DTYPE_BITS[dtype]
        if bits % 8 or offsets[1] - offsets[0] != bits // 8:
            raise HeaderError("tensor %r: %s %r needs %s bytes but data_offsets %r span %d" % (
                name, dtype, shape, "%.1f" % (bits / 8.0) if bits % 8 else bits // 8, offsets,
                offsets[1] - offsets[0]))
        if data_size is not None and offsets[1] > data_size:
            raise HeaderError("tensor %r: data_offsets %r run past the end of the data (%d bytes): the file is "
                              "truncated or the header is wrong" % (name, offsets, data_size))
        tensors[name] = {"dtype": dtype, "shape": list(shape), "offsets": list(offsets), "numel": numel}
        if offsets[1] > offsets[0]:
            spans.append((offsets[0], offsets[1], name))
    spans.sort()
    end = 0
    for begin, stop, name in spans:
        if begin < end:
            raise HeaderError("tensor %r: data_offsets overlap another tensor" % name)
        end = stop
    data_bytes = sum(stop - begin for begin, stop, _name in spans)
    if data_size is not None and data_size != end:
        raise HeaderError("the header describes %d data bytes but the file holds %d: the file is %s" % (
            end, data_size, "truncated" if data_size < end else "longer than its header says"))
    result = {"tensors": tensors, "metadata": metadata or {}, "data_bytes": data_bytes, "header_size": header_size,
              "expected_file_size": None}
    if header_size is not None:
        result["expected_file_size"] = 8 + header_size + end
    return result


def _header_length(prefix, file_size, max_header):
    if len(prefix) < 8:
        raise HeaderError("too short for a safetensors file (%d bytes)" % len(prefix))
    (length,) = struct.unpack("<Q", prefix[:8])
    if length > max_header:
        raise HeaderError("header length %d exceeds the %d-byte limit: not a safetensors file or a damaged one" % (
            length, max_header))
    if file_size is not None and 8 + length > file_size:
        raise HeaderError("header length %d runs past the end of the file (%d bytes)" % (length, file_size))
    return length


def header_length(prefix, file_size=None, max_header=MAX_HEADER_BYTES):
    """The header length N that the first 8 bytes of a safetensors file announce, checked against ``max_header`` and
    (when given) the file size. Raises HeaderError."""
    return _header_length(bytes(prefix[:8]), file_size, max_header)


def parse_header_bytes(data, file_size=None, max_header=MAX_HEADER_BYTES):
    """Parse a header from bytes: the whole file, or its beginning plus ``file_size`` (e.g. bytes from a range
    request). Without ``file_size`` and with only a prefix, the coverage checks are skipped."""
    data = bytes(data)
    length = _header_length(data, file_size if file_size is not None else None, max_header)
    if len(data) < 8 + length:
        raise HeaderError("only %d bytes given, the header needs %d" % (len(data), 8 + length))
    data_size = None
    if file_size is not None:
        data_size = file_size - 8 - length
    return parse_header_json(data[8:8 + length], header_size=length, data_size=data_size)


def read_header(path, max_header=MAX_HEADER_BYTES):
    """Parse the header of a local safetensors file, checking it against the file's size."""
    with open(path, "rb") as handle:
        file_size = os.fstat(handle.fileno()).st_size
        length = _header_length(handle.read(8), file_size, max_header)
        raw = handle.read(length)
    if len(raw) != length:
        raise HeaderError("the header was cut short")
    return parse_header_json(raw, header_size=length, data_size=file_size - 8 - length)


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------------------------------------------
def _is_aux(name):
    return name.endswith(_AUX_SUFFIXES) or any(marker in name for marker in _AUX_MARKERS)


def _quant_bits(quantization):
    if not isinstance(quantization, dict):
        return None
    bits = quantization.get("bits", quantization.get("w_bit"))
    if _is_int(bits) and bits in (2, 3, 4, 8):
        return bits
    if quantization.get("load_in_4bit"):
        return 4
    if quantization.get("load_in_8bit"):
        return 8
    return None


def summarize_headers(headers, quantization=None):
    """Parameter counts over one model's headers.

    Quantized checkpoints pack several parameters into one stored element: GPTQ/AWQ ``*.qweight`` (I32, 32/bits per
    element) and bitsandbytes 4-bit (U8 with ``.absmax``/``.quant_state`` companions, 2 per element); ``quantization``
    (``config.json``'s ``quantization_config``) gives the bits. Scales, zero points and permutations are counted
    apart as ``aux_elements``.

    Returns ``{'tensors', 'params_total', 'params_by_dtype', 'stored_elements', 'aux_elements', 'data_bytes',
    'dominant_dtype', 'precision', 'packed'}``; ``precision`` is canonical (``'bf16'``, ``'int4'``…) or None.
    """
    bits = _quant_bits(quantization)
    names = set()
    for header in headers:
        names.update(header["tensors"])
    # bitsandbytes 4-bit: ``X.weight`` (U8) comes with ``X.weight.absmax`` or ``X.weight.quant_state.*``.
    bnb_packed = set()
    for name in names:
        if name.endswith(".absmax") and not name.endswith(".nested_absmax"):
            bnb_packed.add(name[:-len(".absmax")])
        elif ".quant_state." in name:
            bnb_packed.add(name.split(".quant_state.")[0])
    by_dtype = {}
    stored = aux = data_bytes = count = 0
    packed = False
    for header in headers:
        data_bytes += header["data_bytes"]
        for name, info in header["tensors"].items():
            count += 1
            stored += info["numel"]
            if _is_aux(name):
                aux += info["numel"]
                continue
            params = info["numel"]
            key = info["dtype"]
            if name.endswith(".qweight") and info["dtype"] in ("I32", "U32") and bits:
                params = info["numel"] * (32 // bits)
                key = "int%d(packed)" % bits
                packed = True
            elif info["dtype"] == "U8" and bits == 4 and name in bnb_packed:
                params = info["numel"] * 2
                key = "int4(packed)"
                packed = True
            by_dtype[key] = by_dtype.get(key, 0) + params
    total = sum(by_dtype.values())
    dominant = max(sorted(by_dtype), key=lambda k: by_dtype[k]) if by_dtype else None
    if packed and bits in (4, 8):
        precision = "int%d" % bits
    elif packed:
        precision = None
    else:
        precision = DTYPE_PRECISION.get(dominant)
    return {"tensors": count, "params_total": total, "params_by_dtype": by_dtype, "stored_elements": stored,
            "aux_elements": aux, "data_bytes": data_bytes, "dominant_dtype": dominant, "precision": precision,
            "packed": packed}


def compare_claims(summary, claimed_params=None, claimed_precision=None, tolerance=0.25):
    """Compare the header-derived facts with what the name or the caller claims.

    Parameter counts in names are rounded (``7B`` for 7.6e9), so a count within ``tolerance`` (relative to the claim)
    agrees. fp16 and bf16 have the same size and differ only in a warning.
    Returns ``{'problems': [...], 'warnings': [...], 'params_ratio': float or None}``.
    """
    problems, warnings = [], []
    ratio = None
    actual = summary.get("params_total") if summary else None
    if claimed_params:
        if not actual:
            warnings.append("no safetensors headers to check the claimed %d parameters against" % claimed_params)
        else:
            ratio = float(actual) / float(claimed_params)
            if abs(ratio - 1.0) > tolerance:
                problems.append("the weights hold %d parameters but %d are claimed (ratio %.3f, tolerance %.0f%%)" % (
                    actual, claimed_params, ratio, tolerance * 100))
    if claimed_precision:
        have = summary.get("precision") if summary else None
        if not summary or not summary.get("params_total"):
            warnings.append("no safetensors headers to check the claimed precision %s against" % claimed_precision)
        elif have is None:
            warnings.append("the weights' precision cannot be told from their dtypes (%s); claimed %s" % (
                summary.get("dominant_dtype"), claimed_precision))
        elif have != claimed_precision:
            if set((have, claimed_precision)) == set(("fp16", "bf16")):
                warnings.append("the weights are %s but %s is claimed (same size)" % (have, claimed_precision))
            else:
                problems.append("the weights are %s (mostly %s) but %s is claimed" % (
                    have, summary.get("dominant_dtype"), claimed_precision))
    return {"problems": problems, "warnings": warnings, "params_ratio": ratio}
