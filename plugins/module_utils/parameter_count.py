# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parameter counts: ``"32B"``, ``"1.5B"``, ``"0.5b"``, ``"500M"``, ``1.5e9``, ``7000000000`` -> an exact integer.

Pure functions, standard library only.
"""

import math
import re
from decimal import Decimal, InvalidOperation

from ansible_collections.llmops.deploy.plugins.module_utils.sizing_errors import SizingInputError

SUFFIXES = {"k": 10 ** 3, "m": 10 ** 6, "b": 10 ** 9, "t": 10 ** 12}

ACCEPTED = ("a positive count such as 32B, 1.5B, 0.5b, 671B, 500M, 1.2T, 1.5e9 or 7000000000 "
            "(suffix K, M, B or T; B = 10^9 parameters)")

_SIZE_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?|-?\.\d+)\s*([kmbt])?\s*$", re.IGNORECASE)


def parse_params(value, field="params"):
    """Return the parameter count as an int. Raises SizingInputError naming ``field``."""
    if isinstance(value, bool) or value is None:
        raise SizingInputError(field, value, ACCEPTED)
    count = None
    if isinstance(value, int):
        count = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SizingInputError(field, value, ACCEPTED)
        count = Decimal(repr(value))
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            count = Decimal(match.group(1)) * SUFFIXES.get((match.group(2) or "").lower(), 1)
        else:
            try:
                count = Decimal(value.strip())
            except InvalidOperation:
                count = None
            if count is not None and not count.is_finite():
                count = None
    if count is None:
        raise SizingInputError(field, value, ACCEPTED)
    if count <= 0:
        raise SizingInputError(field, value, ACCEPTED, "must be greater than zero")
    integral = count.to_integral_value()
    if integral != count:
        raise SizingInputError(field, value, ACCEPTED, "not a whole number of parameters")
    return int(integral)


def format_params(count):
    """``32000000000`` -> ``'32B'``, ``1500000000`` -> ``'1.5B'``, ``500000000`` -> ``'500M'``."""
    for suffix, scale in (("T", 10 ** 12), ("B", 10 ** 9), ("M", 10 ** 6), ("K", 10 ** 3)):
        if count >= scale:
            text = "%.2f" % (Decimal(count) / scale)
            return text.rstrip("0").rstrip(".") + suffix
    return str(count)
