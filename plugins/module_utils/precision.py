# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Numeric precisions: canonical names, bytes per parameter, spellings, hardware support.

Pure functions, standard library only (runs on targets with Python >= 3.8).

Bytes per parameter follow the guide's table 2.2 (INT4 0.5, INT8 1, FP8 1, FP16 2, FP32 4) plus BF16 (2).
They are kept as ``fractions.Fraction`` so that sizing arithmetic is exact (0.5 bytes is not rounded).
"""

from fractions import Fraction

from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

# Canonical precision -> bytes per parameter (guide table 2.2, plus BF16).
BYTES_PER_PARAM = {
    "int4": Fraction(1, 2),
    "int8": Fraction(1),
    "fp8": Fraction(1),
    "fp16": Fraction(2),
    "bf16": Fraction(2),
    "fp32": Fraction(4),
}

# Display labels, as the guide writes them.
LABELS = {
    "int4": "INT4",
    "int8": "INT8",
    "fp8": "FP8",
    "fp16": "FP16",
    "bf16": "BF16",
    "fp32": "FP32",
}

# Minimum NVIDIA compute capability for a precision to run natively. The guide says FP8 is "H100 only"; the real
# requirement is FP8 tensor cores, i.e. Ada (8.9), Hopper (9.0) and newer. BF16 needs Ampere (8.0) or newer.
MIN_COMPUTE_CAPABILITY = {
    "fp8": (8, 9),
    "bf16": (8, 0),
}

# AMD gfx targets with native support (MI300 family gfx94x, MI350 gfx950, RDNA4 gfx12 for FP8; CDNA/RDNA3+ for BF16).
AMD_ARCH_PREFIXES = {
    "fp8": ("gfx94", "gfx95", "gfx12"),
    "bf16": ("gfx908", "gfx90a", "gfx94", "gfx95", "gfx11", "gfx12"),
}

# Every accepted spelling (compared lower-cased, with spaces, '_' and '-' removed) -> canonical name.
_ALIASES = {
    "int4": "int4", "4bit": "int4", "4bits": "int4", "w4a16": "int4", "q4": "int4", "nf4": "int4", "i4": "int4",
    "int8": "int8", "8bit": "int8", "8bits": "int8", "w8a8": "int8", "w8a16": "int8", "q8": "int8", "i8": "int8",
    "fp8": "fp8", "float8": "fp8", "e4m3": "fp8", "fp8e4m3": "fp8", "e5m2": "fp8", "fp8e5m2": "fp8", "w8a8fp8": "fp8",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "single": "fp32", "f32": "fp32",
    # The quantisation spellings model names carry (model_names.py reads them from 'Qwen2.5-7B-Instruct-AWQ',
    # '...-GPTQ-Int8', '...-bnb-4bit'), accepted as precision values too.
    "awq": "int4", "gptq": "int4", "gptqint4": "int4", "gptqint8": "int8", "bnb4bit": "int4", "bnbnf4": "int4",
    "bnb8bit": "int8", "mxfp4": "int4", "nvfp4": "int4", "fp4": "int4", "mlx4bit": "int4", "mlx8bit": "int8",
    "w8afp8": "fp8", "fp8dynamic": "fp8",
}

# Spellings that name a storage format as well as a precision -> the format (see weight_format).
_FORMAT_ALIASES = {
    "awq": "awq", "gptq": "gptq-int4", "gptqint4": "gptq-int4", "gptqint8": "gptq-int8", "bnb4bit": "bnb-4bit",
    "nf4": "bnb-4bit", "bnbnf4": "bnb-4bit", "bnb8bit": "bnb-8bit", "mxfp4": "mxfp4", "w4a16": "w4a16",
    "w8a8": "w8a8", "w8afp8": "fp8", "fp8dynamic": "fp8",
}

# What error messages list as accepted (canonical names first, then the other spellings).
ACCEPTED_SPELLINGS = tuple(BYTES_PER_PARAM) + tuple(sorted(k for k in _ALIASES if k not in BYTES_PER_PARAM))


def _squash(value):
    return "".join(ch for ch in value.strip().lower() if ch not in " _-")


def normalize_precision(value, field="precision"):
    """Return the canonical precision name for ``value`` (``'FP16'``, ``'float16'``, ``'half'`` -> ``'fp16'``).

    Raises SizingInputError naming the field, the value and the accepted values.
    """
    if isinstance(value, str) and value.strip():
        canonical = _ALIASES.get(_squash(value))
        if canonical:
            return canonical
    raise SizingInputError(
        field, value,
        "one of %s (canonical: %s)" % (", ".join(ACCEPTED_SPELLINGS), ", ".join(BYTES_PER_PARAM)),
    )


# Quantised storage formats: (precision, bits stored per quantised weight, description). The bits count what the
# format writes beside the weights, as the checkpoints store it:
#   AWQ int4 g128        int32-packed 4-bit qweight, per group of 128 input channels one fp16 scale and one 4-bit
#                        zero point (int32-packed qzeros): 4 + (16 + 4) / 128 bits
#   GPTQ int4/int8 g128  the same layout at 4 or 8 bits: b + (16 + b) / 128 (the act-order g_idx, one int32 per
#                        input channel, adds 32 / out_features bits: under 0.3 % of a 7B-72B checkpoint, not counted)
#   FP8                  8-bit weights with fp32 scales per output channel or per 128 x 128 block (under 0.1 %)
#   W8A8 (int8)          8-bit weights with one scale per output channel (compressed-tensors)
#   W4A16                4-bit packed weights with one 16-bit scale per group of 128 (compressed-tensors)
#   bitsandbytes NF4     4-bit weights, per block of 64 one 8-bit absmax, per 256 absmax one fp32 (double quant)
#   bitsandbytes int8    8-bit weights with one fp32 scale per row
#   MXFP4                4-bit values with one 8-bit shared exponent per 32
# Embeddings, lm_head, norms, biases of norms, MoE routers and vision towers stay at 16 bits in all of them.
STORAGE_FORMATS = {
    "awq": ("int4", Fraction(4) + Fraction(16 + 4, 128), "AWQ int4 g128"),
    "gptq-int4": ("int4", Fraction(4) + Fraction(16 + 4, 128), "GPTQ int4 g128"),
    "gptq-int8": ("int8", Fraction(8) + Fraction(16 + 8, 128), "GPTQ int8 g128"),
    "fp8": ("fp8", Fraction(8), "FP8"),
    "w8a8": ("int8", Fraction(8), "INT8 W8A8"),
    "w4a16": ("int4", Fraction(4) + Fraction(16, 128), "INT4 W4A16 g128"),
    "bnb-4bit": ("int4", Fraction(4) + Fraction(8, 64) + Fraction(32, 64 * 256), "bitsandbytes NF4 (double quant)"),
    "bnb-8bit": ("int8", Fraction(8), "bitsandbytes int8"),
    "mxfp4": ("int4", Fraction(17, 4), "MXFP4"),
}
# Bits per quantised weight the engine holds where that differs from what the checkpoint stores. vLLM's
# bitsandbytes loader dequantizes the double-quantised absmax to fp32 when it loads the weights
# (model_loader/bitsandbytes_loader.py dequantize_dq, vLLM PR #19742, June 2025): one fp32 absmax per block of 64
# 4-bit weights, 4 + 32 / 64 bits, as checkpoints without double quantisation store it.
RESIDENT_BITS = {
    "bnb-4bit": Fraction(4) + Fraction(32, 64),
}
# model_names' quantization values -> storage format.
NAME_FORMATS = {
    "awq": "awq", "gptq": "gptq-int4", "gptq-int4": "gptq-int4", "gptq-int8": "gptq-int8", "fp8": "fp8",
    "w8a8": "w8a8", "w4a16": "w4a16", "bnb-4bit": "bnb-4bit", "nf4": "bnb-4bit", "bnb-8bit": "bnb-8bit",
    "mxfp4": "mxfp4", "w8afp8": "fp8",
}


def weight_format(value):
    """The storage format a precision spelling names (``'bnb-4bit'`` -> ``'bnb-4bit'``, ``'AWQ'`` -> ``'awq'``), or None.

    Plain precisions (``fp16``, ``int4``) name no format. ``value`` must be an accepted spelling.
    """
    normalize_precision(value)
    return _FORMAT_ALIASES.get(_squash(value))


def bytes_per_param(precision):
    """Bytes per parameter (a Fraction) of a precision given in any accepted spelling."""
    return BYTES_PER_PARAM[normalize_precision(precision)]


def label(precision):
    """Display label (``'FP16'``) of a precision given in any accepted spelling."""
    return LABELS[normalize_precision(precision)]


def parse_compute_capability(value):
    """``'8.9'``/``8.9``/``(8, 9)`` -> ``(8, 9)``; ``None``/``''``/``'[N/A]'`` -> ``None``."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value).strip()
    if not text or text.startswith("["):
        return None
    major, _sep, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        raise SizingInputError("compute_capability", value, "a version such as '8.0', '8.9' or '9.0'")


def hardware_support(precision, vendor=None, compute_capability=None, arch=None):
    """Can a GPU run ``precision`` natively?

    Returns ``(supported, reason)`` where ``supported`` is True, False or None (unknown: no capability reported).
    The reason is a plain sentence.
    """
    canonical = normalize_precision(precision)
    vendor = (vendor or "nvidia").lower()
    if vendor == "amd":
        prefixes = AMD_ARCH_PREFIXES.get(canonical)
        if prefixes is None:
            return True, "%s runs on AMD Instinct/Radeon GPUs" % LABELS[canonical]
        if not arch:
            return None, "%s support unknown: the GPU did not report its gfx target" % LABELS[canonical]
        if str(arch).lower().startswith(prefixes):
            return True, "%s is supported by %s" % (LABELS[canonical], arch)
        return False, "%s needs an AMD GPU of %s; this GPU is %s" % (
            LABELS[canonical], "/".join(p + "*" for p in prefixes), arch)
    needed = MIN_COMPUTE_CAPABILITY.get(canonical)
    if needed is None:
        return True, "%s runs on every supported NVIDIA GPU" % LABELS[canonical]
    have = parse_compute_capability(compute_capability)
    if have is None:
        return None, "%s needs compute capability %d.%d; the GPU did not report its capability" % (
            LABELS[canonical], needed[0], needed[1])
    if have >= needed:
        return True, "%s needs compute capability %d.%d; the GPU has %d.%d" % (
            LABELS[canonical], needed[0], needed[1], have[0], have[1])
    return False, "%s needs compute capability %d.%d; the GPU has %d.%d" % (
        LABELS[canonical], needed[0], needed[1], have[0], have[1])
