# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ModelScope model ids: ``owner/name`` -> family, version, date tag, function tags, distillation, size, quantisation.

The guide (section 3.2) reads a ModelScope name as ``model name + version + extra attributes (date / function /
distillation / size / quantisation precision)``::

    deepseek-ai/DeepSeek-R1-0528                -> DeepSeek R1, updated on 05-28 (the year is not in the name)
    deepseek-ai/DeepSeek-OCR                    -> DeepSeek, specialised for OCR
    deepseek-ai/DeepSeek-R1-Distill-Qwen-32B    -> DeepSeek R1 distilled, Qwen base, 32B parameters
    okwinds/DeepSeek-R1-Distill-Qwen-32B-FP8    -> the same, FP8 precision

``parse_model_id`` does this for the names real publishers use (Qwen, DeepSeek, Llama, Mistral/Mixtral, GLM, InternLM,
Yi, Gemma, Phi, MiniCPM, unsloth/TheBloke/bartowski re-uploads, GGUF/AWQ/GPTQ/bnb/MLX quantisations).

Ids must have an owner: ModelScope ids are always ``owner/name``. The SDK would quietly prefix a bare name with its
default group, which downloads some other (or no) model, so a bare name is refused here.

Pure functions, standard library only (runs on targets with Python >= 3.8).
"""

import re

from ansible_collections.llmops.deploy.plugins.module_utils.parameter_count import format_params, parse_params
from ansible_collections.llmops.deploy.plugins.module_utils.precision import BYTES_PER_PARAM, LABELS, normalize_precision
from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

ACCEPTED_ID = "an id 'owner/name' such as deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"

# ModelScope owners and names: letters, digits, '-', '_' and '.', starting with a letter or digit.
_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Known families: lower-case spelling in names -> canonical spelling. Longest aliases are tried first, so that
# 'mixtral' is not read as 'mistral' and 'chatglm' not as 'glm'. Aliases with '-' span several name tokens.
FAMILIES = {
    "deepseek": "DeepSeek",
    "qwen": "Qwen",
    "qwq": "QwQ",
    "qvq": "QVQ",
    "llama": "Llama",
    "tinyllama": "TinyLlama",
    "mistral": "Mistral",
    "mixtral": "Mixtral",
    "ministral": "Ministral",
    "codestral": "Codestral",
    "glm": "GLM",
    "chatglm": "ChatGLM",
    "internlm": "InternLM",
    "internvl": "InternVL",
    "baichuan": "Baichuan",
    "yi": "Yi",
    "gemma": "Gemma",
    "phi": "Phi",
    "minicpm": "MiniCPM",
    "falcon": "Falcon",
    "kimi": "Kimi",
    "minimax": "MiniMax",
    "ernie": "ERNIE",
    "hunyuan": "Hunyuan",
    "starcoder": "StarCoder",
    "olmo": "OLMo",
    "smollm": "SmolLM",
    "nemotron": "Nemotron",
    "gpt-oss": "GPT-OSS",
    "seed-oss": "Seed-OSS",
    "vicuna": "Vicuna",
}

# Family descriptions used in explanations.
_FAMILY_NOTES = {
    "QwQ": "Qwen's reasoning model line",
    "QVQ": "Qwen's visual reasoning model line",
    "Mixtral": "Mistral AI's mixture-of-experts line",
    "ChatGLM": "Zhipu AI's chat line of GLM",
}

# Words before the family that name the maker, not the model ('Meta-Llama-3.1-8B-Instruct').
_MAKER_PREFIXES = {"meta": "Meta"}

# Function tags: lower-case spelling -> canonical tag. Order in the name is kept.
FUNCTION_TAGS = {
    "ocr": "OCR",
    "coder": "Coder",
    "code": "Coder",
    "math": "Math",
    "vl": "VL",
    "vision": "VL",
    "v": "VL",
    "instruct": "Instruct",
    "it": "Instruct",
    "chat": "Chat",
    "base": "Base",
    "reasoning": "Reasoning",
    "reasoner": "Reasoning",
    "thinking": "Thinking",
    "audio": "Audio",
    "omni": "Omni",
    "embedding": "Embedding",
    "reranker": "Reranker",
    "prover": "Prover",
    "guard": "Guard",
}

FUNCTION_TAG_MEANINGS = {
    "OCR": "specialised for OCR (optical character recognition: reading text in images and documents)",
    "Coder": "tuned for code generation",
    "Math": "tuned for mathematics",
    "VL": "vision-language: takes images as well as text",
    "Instruct": "instruction-tuned to follow user instructions",
    "Chat": "tuned for multi-turn chat",
    "Base": "the pre-trained base model, not instruction-tuned",
    "Reasoning": "tuned for step-by-step reasoning",
    "Thinking": "the thinking (long reasoning) variant",
    "Audio": "takes audio as well as text",
    "Omni": "takes text, images, audio and video",
    "Embedding": "an embedding model (vectors, not text generation)",
    "Reranker": "a reranking model for retrieval",
    "Prover": "tuned for formal theorem proving",
    "Guard": "a safety classifier",
}

# Quantisation spellings (one token) -> (canonical quantisation, precision the weights imply).
_QUANT_TOKENS = {
    "fp8": ("fp8", "fp8"),
    "int4": ("int4", "int4"),
    "int8": ("int8", "int8"),
    "awq": ("awq", "int4"),
    "gptq": ("gptq", "int4"),
    "gguf": ("gguf", None),
    "nf4": ("nf4", "int4"),
    "exl2": ("exl2", None),
    "mxfp4": ("mxfp4", "int4"),
    "nvfp4": ("nvfp4", "int4"),
    "fp4": ("fp4", "int4"),
}

# Precisions named in full-precision uploads ('unsloth/DeepSeek-R1-BF16'): not a quantisation, but a precision.
_PRECISION_TOKENS = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}

# Bit widths ('4bit', GGUF 'Q5_K_M') -> precision used for sizing. Widths the sizing tables do not know are rounded
# up (1-3 -> int4, 5/6 -> int8) so that memory is never under-estimated.
_BITS_PRECISION = {1: "int4", 2: "int4", 3: "int4", 4: "int4", 5: "int8", 6: "int8", 8: "int8", 16: "fp16"}

_QUANT_MEANINGS = {
    "fp8": "weights stored in FP8 (8-bit floating point)",
    "int4": "weights quantised to 4-bit integers",
    "int8": "weights quantised to 8-bit integers",
    "awq": "AWQ (activation-aware weight quantisation), 4-bit weights",
    "gptq": "GPTQ quantisation; no bit width in the name, GPTQ checkpoints are 4-bit unless they say Int8/8bit "
            "(config.json quantization_config.bits tells)",
    "gptq-int4": "GPTQ quantisation with 4-bit integer weights",
    "gptq-int8": "GPTQ quantisation with 8-bit integer weights",
    "bnb-4bit": "bitsandbytes 4-bit quantisation",
    "bnb-8bit": "bitsandbytes 8-bit quantisation",
    "gguf": "GGUF files for llama.cpp / Ollama",
    "nf4": "NF4 (4-bit NormalFloat, bitsandbytes)",
    "exl2": "EXL2 (ExLlamaV2) quantisation; the bit width is in the files, not the name",
    "mxfp4": "MXFP4 (4-bit microscaling floating point)",
    "nvfp4": "NVFP4 (NVIDIA 4-bit floating point)",
    "fp4": "weights stored in 4-bit floating point",
}

_GGUF_TYPE_RE = re.compile(r"^(?:UD-)?I?Q[1-8](?:_[0-9A-Z]+)*$", re.IGNORECASE)
_GGUF_FLOAT_TYPES = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([bmt])$", re.IGNORECASE)
_CONTEXT_RE = re.compile(r"^(\d+(?:\.\d+)?)([km])$", re.IGNORECASE)
_MOE_RE = re.compile(r"^(\d+)x(\d+(?:\.\d+)?)([bmt])$", re.IGNORECASE)
_ACTIVE_RE = re.compile(r"^a(\d+(?:\.\d+)?)([bmt])$", re.IGNORECASE)
_EFFECTIVE_RE = re.compile(r"^e(\d+(?:\.\d+)?)b$", re.IGNORECASE)
_BITS_RE = re.compile(r"^(\d+)bits?$", re.IGNORECASE)
_WA_RE = re.compile(r"^w(\d+)a(\d+|fp8)$", re.IGNORECASE)
_DATE_RE = re.compile(r"^(?:\d{4}|\d{8})$")
_BITS_WORDS = ("int4", "int8", "2bit", "3bit", "4bit", "5bit", "6bit", "8bit")
_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)*$")
_LETTER_VERSION_RE = re.compile(r"^([A-PR-Za-pr-z])(\d+(?:\.\d+)*)$")
_OCR_VERSION_RE = re.compile(r"^(ocr)(\d+(?:\.\d+)*)$", re.IGNORECASE)
_DISTILL = ("distill", "distilled")

# Function tags that name a line of their own: a version right after them versions that line (DeepSeek-OCR-2,
# MiniCPM-V-2_6, DeepSeek-Coder-V2), where 'Instruct-v0.1' versions the whole model.
_LINE_TAGS = ("OCR", "VL", "Coder", "Math", "Prover", "Omni", "Audio")

# A token is split further on '.' and '_' except between digits ('2_5', 'v0.1') and in GGUF types ('Q4_K_M').
_SUBSPLIT_RE = re.compile(r"(?<!\d)[._]|[._](?!\d)")

_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _fail(value, detail):
    raise SizingInputError("model", value, ACCEPTED_ID, detail)


def split_model_id(model_id, strip=True):
    """``'deepseek-ai/DeepSeek-OCR'`` -> ``('deepseek-ai', 'DeepSeek-OCR')``. Raises SizingInputError (field ``model``).

    The one rule for a ModelScope id (``hub_manifest.split_model_id`` applies it to hub requests): exactly one ``/``,
    owner and name of letters, digits, ``-``, ``_`` and ``.``, each starting with a letter or digit. ``strip``: blanks
    around the id are ignored (names typed by people); without it they are refused (ids sent to a hub).
    """
    if not isinstance(model_id, str):
        _fail(model_id, "not a string")
    text = model_id.strip() if strip else model_id
    if not text:
        _fail(model_id, "empty")
    if "/" not in text:
        _fail(model_id, "no owner: ModelScope ids are 'owner/name'")
    if text.count("/") > 1:
        _fail(model_id, "more than one '/'; give the id, not a URL or a path")
    owner, name = text.split("/")
    if not owner:
        _fail(model_id, "empty owner")
    if not name:
        _fail(model_id, "empty name")
    for part, what in ((owner, "owner"), (name, "name")):
        if not _PART_RE.match(part):
            _fail(model_id, "the %s may hold only letters, digits, '-', '_' and '.', starting with a letter or digit"
                  % what)
    return owner, name


def _tokens(name):
    tokens = []
    for piece in name.split("-"):
        if _GGUF_TYPE_RE.match(piece):
            tokens.append(piece)
        else:
            tokens.extend(t for t in _SUBSPLIT_RE.split(piece) if t)
    # 'UD-Q4_K_XL' (unsloth dynamic GGUF) is one quantisation type.
    merged = []
    for tok in tokens:
        if merged and merged[-1].lower() == "ud" and _GGUF_TYPE_RE.match(tok):
            merged[-1] = "UD-" + tok
        else:
            merged.append(tok)
    return merged


def _dotted(text):
    return text.replace("_", ".")


def _match_family(tokens, start):
    """Family at ``tokens[start]`` -> ``(canonical, version or None, tokens used, coder prefix)`` or None."""
    for alias in sorted(FAMILIES, key=len, reverse=True):
        parts = alias.split("-")
        window = tokens[start:start + len(parts)]
        if len(window) < len(parts):
            continue
        if [t.lower() for t in window[:-1]] != parts[:-1]:
            continue
        last = window[-1]
        for coder in (False, True):
            prefix = "code" if coder else ""
            match = re.match(r"^%s%s(\d+(?:[._]\d+)*)?$" % (prefix, re.escape(parts[-1])), last, re.IGNORECASE)
            if match:
                version = _dotted(match.group(1)) if match.group(1) else None
                return FAMILIES[alias], version, len(parts), coder
    return None


def _date_meaning(tag):
    """Plain words for a date tag; returns ``(meaning, format)``."""
    if len(tag) == 8:
        month, day = int(tag[4:6]), int(tag[6:])
        if 1 <= month <= 12 and 1 <= day <= _MONTH_DAYS[month - 1]:
            return "update of %s-%s-%s" % (tag[:4], tag[4:6], tag[6:]), "YYYYMMDD"
        return "a release tag that is not a valid date (YYYYMMDD)", None
    first, second = int(tag[:2]), int(tag[2:])
    if 1 <= first <= 12 and 1 <= second <= _MONTH_DAYS[first - 1]:
        return ("update of %s-%s (month %s, day %s); the year is not in the name" % (
            tag[:2], tag[2:], tag[:2], tag[2:]), "MMDD")
    if 1 <= second <= 12:
        return ("not a valid month-day (MMDD); read as year-month (YYMM, the way Qwen and Mistral tag releases) "
                "it would be 20%s-%s" % (tag[:2], tag[2:]), "YYMM")
    return "a release tag that is neither a month-day (MMDD) nor a year-month (YYMM)", None


def _size(number, suffix):
    return parse_params("%s%s" % (number, suffix.upper()), "model")


def _label(number, suffix):
    return "%s%s" % (number, suffix.upper())


def _gguf_precision(gguf_type):
    upper = gguf_type.upper()
    if upper.startswith("UD-"):
        upper = upper[3:]
    bits = int(re.match(r"^I?Q(\d)", upper).group(1))
    return _BITS_PRECISION.get(bits, "int8")


def _empty_result(text, owner, name):
    return {
        "id": text,
        "owner": owner,
        "name": name,
        "family": None,
        "series": None,
        "version": None,
        "date_tag": None,
        "date_tag_meaning": None,
        "date_tag_format": None,
        "function_tags": [],
        "distilled": False,
        "distill_base": None,
        "base_family": None,
        "params": None,
        "params_label": None,
        "params_is_upper_bound": False,
        "active_params": None,
        "active_params_label": None,
        "experts": None,
        "moe": False,
        "quantization": None,
        "gguf_type": None,
        "precision": None,
        "context_length_tag": None,
        "variant_tags": [],
        "summary": None,
        "explanation": [],
    }


def parse_model_id(model_id):
    """Parse a ModelScope id. Returns a dict; every key is present (None, [] or False when the name says nothing).

    Raises SizingInputError (field ``model``) for anything that is not ``owner/name``.
    """
    owner, name = split_model_id(model_id)
    res = _empty_result(model_id.strip(), owner, name)
    notes = {"coder_prefix": False, "version_tag": None, "effective": [], "float_precision": None}
    tokens = _tokens(name)
    lowered = [t.lower() for t in tokens]
    mlx = owner.lower() == "mlx-community" or "mlx" in lowered
    has_gguf = "gguf" in lowered

    # Family: the leading name token, after a maker prefix such as 'Meta-'.
    index = 0
    if len(tokens) > 1 and lowered[0] in _MAKER_PREFIXES and _match_family(tokens, 1):
        index = 1
    found = _match_family(tokens, index)
    if found:
        res["family"], res["version"], used, notes["coder_prefix"] = found
        if notes["coder_prefix"]:
            res["function_tags"].append("Coder")
        index += used
    else:
        res["family"] = tokens[0]
        notes["unknown_family"] = True
        index = 1

    quant = None
    quant_precision = None
    expect_distill_base = False
    for pos in range(index, len(tokens)):
        tok = tokens[pos]
        low = lowered[pos]
        nxt = lowered[pos + 1] if pos + 1 < len(tokens) else ""
        prev = lowered[pos - 1] if pos > index else ""
        prev_tag = FUNCTION_TAGS.get(prev) if FUNCTION_TAGS.get(prev) in _LINE_TAGS else None

        if expect_distill_base:
            expect_distill_base = False
            base = _match_family(tokens, pos)
            if base and base[2] == 1:
                res["distill_base"] = res["base_family"] = base[0]
                continue

        # Quantisation and precision.
        if _GGUF_TYPE_RE.match(tok) or (has_gguf and low in _GGUF_FLOAT_TYPES):
            res["gguf_type"] = tok.upper()
            quant = "gguf"
            quant_precision = _GGUF_FLOAT_TYPES.get(low) or _gguf_precision(tok)
            continue
        if low == "gguf":
            quant = quant or "gguf"
            continue
        if low in ("gptq", "bnb", "mlx", "unsloth") and (nxt in _BITS_WORDS or nxt == "bnb"):
            continue  # read together with the next token: GPTQ-Int4, bnb-4bit, unsloth-bnb-4bit, MLX-4bit
        bits = _BITS_RE.match(tok)
        if low in ("int4", "int8") or bits:
            width = int(bits.group(1)) if bits else int(low[3:])
            if prev == "gptq":
                quant = "gptq-int%d" % width
            elif prev == "bnb":
                quant = "bnb-%dbit" % width
            elif mlx:
                quant = "mlx-%dbit" % width
            else:
                quant = "%dbit" % width if bits else low
            quant_precision = _BITS_PRECISION.get(width, "int8")
            continue
        if low in _QUANT_TOKENS:
            if quant is None or low == "fp8":
                quant, quant_precision = _QUANT_TOKENS[low]
            continue
        wa = _WA_RE.match(tok)
        if wa:
            quant = low
            quant_precision = "fp8" if wa.group(2).lower() == "fp8" and wa.group(1) == "8" else \
                _BITS_PRECISION.get(int(wa.group(1)), "int8")
            continue
        if low in _PRECISION_TOKENS:
            notes["float_precision"] = _PRECISION_TOKENS[low]
            continue
        if low in ("quantized", "quant"):
            continue

        # Sizes: 8x7B, A3B, 32B (a K or M after the size is a context length: 4k, 1M).
        moe = _MOE_RE.match(tok)
        if moe and res["params"] is None:
            each = _size(moe.group(2), moe.group(3))
            res.update(experts=int(moe.group(1)), moe=True, params=int(moe.group(1)) * each,
                       params_is_upper_bound=True, params_label="%sx%s" % (
                           moe.group(1), _label(moe.group(2), moe.group(3))))
            continue
        active = _ACTIVE_RE.match(tok)
        if active:
            res["active_params"] = _size(active.group(1), active.group(2))
            res["active_params_label"] = _label(active.group(1), active.group(2))
            res["moe"] = True
            continue
        size = _SIZE_RE.match(_dotted(tok))
        if size and (res["params"] is None or size.group(2).lower() != "m"):
            if res["params"] is None:
                res["params"] = _size(size.group(1), size.group(2))
                res["params_label"] = _label(size.group(1), size.group(2))
            else:
                res["variant_tags"].append(tok)
            continue
        if _CONTEXT_RE.match(tok):
            res["context_length_tag"] = tok
            continue
        if _EFFECTIVE_RE.match(tok):
            notes["effective"].append(tok)
            res["variant_tags"].append(tok)
            continue

        # Date tag, version, function tags, distillation, a second family.
        if _DATE_RE.match(tok):
            if res["date_tag"] is None:
                res["date_tag"] = tok
                res["date_tag_meaning"], res["date_tag_format"] = _date_meaning(tok)
            else:
                res["variant_tags"].append(tok)
            continue
        ocr = _OCR_VERSION_RE.match(tok)
        if ocr:
            tok, low = ocr.group(1), ocr.group(1).lower()
            if res["version"] is None:
                res["version"] = ocr.group(2)
                notes["version_tag"] = "OCR"
            prev_tag = None
        if res["version"] is None and _NUMBER_RE.match(_dotted(tok)):
            res["version"] = _dotted(tok)
            notes["version_tag"] = prev_tag
            continue
        letter = _LETTER_VERSION_RE.match(tok)
        if letter and res["version"] is None:
            res["version"] = tok
            if letter.group(1).isupper():
                res["series"] = tok
            notes["version_tag"] = prev_tag
            continue
        if low in FUNCTION_TAGS:
            tag = FUNCTION_TAGS[low]
            if tag not in res["function_tags"]:
                res["function_tags"].append(tag)
            continue
        if low in _DISTILL:
            res["distilled"] = True
            expect_distill_base = True
            continue
        if low == "moe":
            res["moe"] = True
            continue
        other = _match_family(tokens, pos)
        if other and other[2] == 1 and res["base_family"] is None:
            res["base_family"] = other[0]
            # DeepSeek also names R1 distillations '<R1 tag>-<student>': DeepSeek-R1-0528-Qwen3-8B.
            if res["family"] == "DeepSeek" and (res["series"] or "").startswith("R"):
                res["distilled"] = True
                res["distill_base"] = other[0]
            continue
        res["variant_tags"].append(tok)

    res["quantization"] = quant
    res["precision"] = quant_precision or notes["float_precision"]
    res["explanation"] = _explain(res, notes)
    res["summary"] = _summary(res, notes)
    return res


def _explain(res, notes):
    """Plain-English sentences, one per recognised attribute, in the order the guide reads a name."""
    why = ["Owner (publisher on ModelScope): %s." % res["owner"]]
    family = res["family"]
    if notes.get("unknown_family"):
        why.append("Family: %s (not a family this parser knows; taken from the leading name token)." % family)
    else:
        note = _FAMILY_NOTES.get(family)
        if notes["coder_prefix"]:
            note = "Code%s: the code line of %s" % (family, family)
        why.append("Family: %s%s." % (family, " (%s)" % note if note else ""))
    if res["version"]:
        if notes["version_tag"]:
            why.append("Version %s of the %s %s line." % (res["version"], family, notes["version_tag"]))
        elif res["series"]:
            why.append("Version %s: the %s %s series." % (res["version"], family, res["series"]))
        else:
            why.append("Version %s of %s." % (res["version"], family))
    if res["date_tag"]:
        why.append("Date tag %s: %s." % (res["date_tag"], res["date_tag_meaning"]))
    for tag in res["function_tags"]:
        why.append("Function tag %s: %s." % (tag, FUNCTION_TAG_MEANINGS[tag]))
    if res["distilled"]:
        teacher = "%s %s" % (family, res["series"]) if res["series"] else family
        base = res["distill_base"]
        why.append("Distilled: %s distilled into a smaller model%s." % (
            teacher, " built on %s (the %s framework)" % (base, base) if base else ""))
    elif res["base_family"]:
        why.append("Built on %s: the name names a second family." % res["base_family"])
    if res["experts"] is not None:
        each = res["params_label"].split("x", 1)[1]
        why.append(
            "Size %s: a mixture of experts, %d experts of %s each, so at most %d x %s = %s parameters; the experts "
            "share their attention and embedding layers, so the real total is smaller (Mixtral-8x7B has 46.7B) and "
            "a real parameter count, when known, should be preferred." % (
                res["params_label"], res["experts"], each, res["experts"], each, format_params(res["params"])))
    elif res["active_params"] is not None:
        total = "out of %s in total" % res["params_label"] if res["params_label"] else "(the name gives no total)"
        why.append("Mixture of experts: %s parameters active per token %s; memory sizing needs the total, since "
                   "every expert is loaded." % (res["active_params_label"], total))
    elif res["moe"]:
        why.append("Mixture of experts (MoE): only some experts run per token, but every expert is loaded.")
    if res["params"] is not None and res["experts"] is None:
        why.append("Size %s: %s parameters (%s)." % (
            res["params_label"], format_params(res["params"]), "{:,}".format(res["params"])))
    for tok in notes["effective"]:
        why.append("%s: an 'effective' size; the model holds more parameters than that." % tok)
    if res["params"] is None:
        why.append("Size: the name gives no total parameter count; give params to size this model.")
    if res["context_length_tag"]:
        why.append("%s: a context length of %s tokens, not a parameter count." % (
            res["context_length_tag"], res["context_length_tag"]))
    quant = res["quantization"]
    if quant:
        why.append("Quantisation %s: %s." % (quant, _QUANT_MEANINGS.get(quant, "quantised weights (%s)" % quant)))
        if res["gguf_type"]:
            why.append("GGUF type %s." % res["gguf_type"])
        elif quant == "gguf":
            why.append("No GGUF type in the name: the repository holds several files and the precision depends on "
                       "the file chosen (for example Q4_K_M).")
    if res["precision"]:
        label = LABELS[res["precision"]]
        how = "weights stored in %s" % label if not quant else "sized as %s" % label
        per = _bytes(res["precision"])
        why.append("Precision %s: %s, %s byte%s per parameter." % (label, how, per, "" if per == "1" else "s"))
    if res["variant_tags"]:
        why.append("Other name parts, not used for sizing: %s." % ", ".join(res["variant_tags"]))
    return why


def _bytes(precision):
    value = BYTES_PER_PARAM[precision]
    if value.denominator == 1:
        return str(value.numerator)
    return ("%.2f" % float(value)).rstrip("0").rstrip(".")


def _summary(res, notes):
    """One line in the guide's style: 'DeepSeek R1, distilled, Qwen base, 32B parameters, FP8 precision'."""
    parts = [res["family"]]
    if res["version"] and not notes["version_tag"]:
        parts[0] += " " + res["version"]
    if res["date_tag"]:
        parts.append("date tag %s" % res["date_tag"])
    if res["function_tags"]:
        parts.append("/".join(
            "%s %s" % (tag, res["version"]) if tag == notes["version_tag"] else tag for tag in res["function_tags"]))
    if res["distilled"]:
        parts.append("distilled" + (", %s base" % res["distill_base"] if res["distill_base"] else ""))
    elif res["base_family"]:
        parts.append("%s base" % res["base_family"])
    if res["params_label"]:
        size = "%s parameters" % res["params_label"]
        if res["params_is_upper_bound"]:
            size += " (at most %s)" % format_params(res["params"])
        if res["active_params_label"]:
            size += " (%s active)" % res["active_params_label"]
        parts.append(size)
    elif res["active_params_label"]:
        parts.append("%s active parameters" % res["active_params_label"])
    quant = res["quantization"]
    if quant and quant not in ("fp8", "int4", "int8"):
        parts.append(quant.upper() if quant in ("awq", "gguf", "gptq", "exl2") else quant)
    if res["gguf_type"]:
        parts.append(res["gguf_type"])
    if res["precision"]:
        parts.append("%s precision" % LABELS[res["precision"]])
    return ", ".join(parts)


def explicit_or_named(model_id_or_parsed=None, params=None, precision=None, need_params=False,
                      params_field="params", precision_field="precision"):
    """What a model is taken to be: a value given explicitly beats what its name says.

    ``model_id_or_parsed``: a ModelScope id, the dict ``parse_model_id`` returned, or None (no name). ``params`` and
    ``precision``: the values given (None or ``''`` when not given), read with ``parse_params`` and
    ``normalize_precision`` and reported under ``params_field`` and ``precision_field`` when they are not valid.

    Returns ``{'params', 'params_source', 'params_is_upper_bound', 'precision', 'precision_source',
    'name_precision', 'info'}``; a source is ``'given'``, ``'name'`` or None. A count given explicitly is the real
    count; one from the name may be an upper bound (``8x7B``: the experts share attention). With ``need_params``, no
    count from either raises SizingInputError (field ``params_field``) saying what the name lacks.
    """
    info = {}
    if model_id_or_parsed is not None:
        info = model_id_or_parsed if isinstance(model_id_or_parsed, dict) else parse_model_id(model_id_or_parsed)
    result = {"params": None, "params_source": None, "params_is_upper_bound": False, "precision": None,
              "precision_source": None, "name_precision": info.get("precision"), "info": info or None}
    if params is not None and (params != "" or (need_params and not info)):
        # '' means not given, unless a count is needed and there is no name to read it from: then it is refused.
        result.update(params=parse_params(params, params_field), params_source="given")
    elif info.get("params") is not None:
        result.update(params=info["params"], params_source="name",
                      params_is_upper_bound=bool(info.get("params_is_upper_bound")))
    elif need_params:
        detail = None
        if info.get("active_params") is not None:
            detail = ("the model id %s names only the active size %s of a mixture of experts; memory sizing needs "
                      "the total, so %s must be given" % (info.get("id"), info.get("active_params_label"),
                                                          params_field))
        elif info:
            detail = "the model id %s has no size in its name, so %s must be given" % (info.get("id"), params_field)
        raise SizingInputError(params_field, params, "a parameter count such as 32B, 1.5B or 671B", detail)
    if precision is not None and precision != "":
        result.update(precision=normalize_precision(precision, precision_field), precision_source="given")
    elif info.get("precision"):
        result.update(precision=info["precision"], precision_source="name")
    return result
