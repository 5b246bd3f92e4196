# Copyright: (c) 2026, llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local ModelScope-compatible hub for tests and demos (stdlib only). See README.md in this directory."""

from .faults import DEFAULT_UNSAFE_PATHS, FaultError
from .models import CATALOGUE, DEFAULT_MODELS, LLAMA3_TINY, QWEN2_TINY, QWEN2_TINY_FP8, ModelSpec, bench_model
from .server import LocalHub

__all__ = ["LocalHub", "FaultError", "DEFAULT_UNSAFE_PATHS", "ModelSpec", "CATALOGUE", "DEFAULT_MODELS",
           "QWEN2_TINY", "LLAMA3_TINY", "QWEN2_TINY_FP8", "bench_model"]
