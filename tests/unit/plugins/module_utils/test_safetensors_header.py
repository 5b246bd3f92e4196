# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""safetensors_header: hand-made headers, malformed headers, parameter counts, claims."""

import json
import struct

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils.safetensors_header import (
    HeaderError, MAX_HEADER_BYTES, compare_claims, parse_header_bytes, read_header, summarize_headers)

from safetensors_layout import tensor_layout


def build(tensors, metadata=None, pad=0, data=None):
    """A safetensors file from [(name, dtype, shape)], tensors laid out contiguously."""
    header, offset = tensor_layout(tensors)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(raw)) + raw + (data if data is not None else b"\0" * offset)


def raw_file(header_obj_or_bytes, data=b""):
    raw = header_obj_or_bytes if isinstance(header_obj_or_bytes, bytes) else json.dumps(header_obj_or_bytes).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_parses_dtypes_shapes_and_offsets():
    blob = build([("a.weight", "BF16", [4, 8]), ("b.bias", "F32", [8])], metadata={"format": "pt"}, pad=5)
    h = parse_header_bytes(blob, file_size=len(blob))
    assert h["tensors"]["a.weight"] == {"dtype": "BF16", "shape": [4, 8], "offsets": [0, 64], "numel": 32}
    assert h["tensors"]["b.bias"]["offsets"] == [64, 96]
    assert h["metadata"] == {"format": "pt"}
    assert h["data_bytes"] == 96
    assert h["expected_file_size"] == len(blob)


def test_read_header_from_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(build([("w", "F16", [3, 3])]))
    assert read_header(str(path))["tensors"]["w"]["numel"] == 9


def test_prefix_only_without_file_size_skips_coverage():
    blob = build([("w", "F16", [1000])])
    length = struct.unpack("<Q", blob[:8])[0]
    h = parse_header_bytes(blob[:8 + length])
    assert h["tensors"]["w"]["offsets"] == [0, 2000]


def test_prefix_with_file_size_checks_bounds():
    blob = build([("w", "F16", [1000])])
    length = struct.unpack("<Q", blob[:8])[0]
    with pytest.raises(HeaderError, match="truncated"):
        parse_header_bytes(blob[:8 + length], file_size=8 + length + 10)


def test_huge_header_length_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}")
    with pytest.raises(HeaderError, match="exceeds the .*limit"):
        read_header(str(path))


def test_header_length_past_end_of_file(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(HeaderError, match="runs past the end of the file"):
        read_header(str(path))


def test_too_short_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(HeaderError, match="too short"):
        read_header(str(path))


@pytest.mark.parametrize("raw, match", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}, "a": {}}', "duplicate key"),
    (b'{"__metadata__": [1]}', "__metadata__ is not an object"),
    (b'{"a": 3}', "entry is not an object"),
    (b'{"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}', "unknown dtype"),
    (b'{"a": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}', "shape"),
    (b'{"a": {"dtype": "F16", "shape": [true], "data_offsets": [0, 2]}}', "shape"),
    (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [2, 0]}}', "data_offsets"),
    (b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0]}}', "data_offsets"),
    (b'{"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 2]}}', "needs 8 bytes"),
])
def test_malformed_headers_give_clear_errors(raw, match):
    with pytest.raises(HeaderError, match=match):
        parse_header_bytes(raw_file(raw, b"\0" * 8), file_size=8 + len(raw) + 8)


def test_offsets_out_of_range():
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    blob = raw_file(header, b"\0" * 8)
    with pytest.raises(HeaderError, match="run past the end of the data"):
        parse_header_bytes(blob, file_size=len(blob))


def test_overlapping_tensors():
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    blob = raw_file(header, b"\0" * 12)
    with pytest.raises(HeaderError, match="overlap"):
        parse_header_bytes(blob, file_size=len(blob))


def test_truncated_and_padded_files(tmp_path):
    blob = build([("w", "F32", [10])])
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(blob[:-4])
    with pytest.raises(HeaderError, match="run past the end|truncated"):
        read_header(str(cut))
    long = tmp_path / "long.safetensors"
    long.write_bytes(blob + b"junk")
    with pytest.raises(HeaderError, match="longer than its header says"):
        read_header(str(long))


def test_sub_byte_dtype_and_empty_tensor():
    blob = build([("f4", "F4", [6]), ("empty", "F16", [0, 5])])
    h = parse_header_bytes(blob, file_size=len(blob))
    assert h["tensors"]["f4"]["offsets"] == [0, 3]
    assert h["tensors"]["empty"]["numel"] == 0


def header_of(tensors):
    blob = build(tensors)
    return parse_header_bytes(blob, file_size=len(blob))


def test_summary_counts_parameters_per_dtype():
    s = summarize_headers([header_of([("a", "BF16", [10, 10]), ("n", "F32", [10])]),
                           header_of([("b", "BF16", [5, 10])])])
    assert s["params_total"] == 160
    assert s["params_by_dtype"] == {"BF16": 150, "F32": 10}
    assert s["dominant_dtype"] == "BF16" and s["precision"] == "bf16"
    assert s["tensors"] == 3 and s["packed"] is False


def test_summary_unpacks_gptq_int4_and_excludes_scales():
    h = header_of([("l.qweight", "I32", [16, 64]), ("l.qzeros", "I32", [1, 8]), ("l.scales", "F16", [1, 64]),
                   ("l.g_idx", "I32", [128]), ("embed.weight", "F16", [100, 64])])
    s = summarize_headers([h], quantization={"quant_method": "gptq", "bits": 4})
    assert s["params_by_dtype"] == {"int4(packed)": 16 * 64 * 8, "F16": 6400}
    assert s["aux_elements"] == 8 + 64 + 128
    assert s["precision"] == "int4" and s["packed"] is True
    # Without the quantization config the packed ints are counted as stored.
    assert summarize_headers([h])["params_by_dtype"]["I32"] == 16 * 64


def test_summary_unpacks_bitsandbytes_4bit():
    h = header_of([("l.weight", "U8", [32, 1]), ("l.weight.absmax", "F32", [2]),
                   ("l.weight.quant_state.bitsandbytes__nf4", "U8", [10]), ("norm.weight", "F16", [8])])
    s = summarize_headers([h], quantization={"load_in_4bit": True})
    assert s["params_by_dtype"] == {"int4(packed)": 64, "F16": 8}
    assert s["precision"] == "int4"


def test_summary_fp8_weights_with_scales():
    h = header_of([("l.weight", "F8_E4M3", [64, 64]), ("l.weight_scale_inv", "F32", [1, 1]),
                   ("norm.weight", "BF16", [64])])
    s = summarize_headers([h])
    assert s["precision"] == "fp8" and s["params_total"] == 64 * 64 + 64


def test_compare_claims_within_tolerance_and_outside():
    summary = {"params_total": 7615616512, "precision": "bf16", "dominant_dtype": "BF16"}
    ok = compare_claims(summary, 7000000000, "bf16", 0.25)
    assert ok["problems"] == [] and round(ok["params_ratio"], 3) == 1.088
    bad = compare_claims({"params_total": 1500000000, "precision": "bf16", "dominant_dtype": "BF16"},
                         7000000000, "int4", 0.25)
    assert len(bad["problems"]) == 2
    assert "1500000000 parameters but 7000000000" in bad["problems"][0]
    assert "bf16" in bad["problems"][1] and "int4" in bad["problems"][1]


def test_compare_claims_fp16_bf16_is_a_warning_and_missing_headers_warn():
    res = compare_claims({"params_total": 10, "precision": "bf16", "dominant_dtype": "BF16"}, None, "fp16")
    assert res["problems"] == [] and "same size" in res["warnings"][0]
    res = compare_claims({}, 7000000000, "bf16")
    assert res["problems"] == [] and len(res["warnings"]) == 2
