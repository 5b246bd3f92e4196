# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shard index of a model (``*.index.json``'s ``weight_map``) checked against its files and safetensors headers.

Standard library only (runs on targets with Python >= 3.8). One check for a model read from a hub
(``model_metadata``, modelscope_info) and for a model directory on disk (``model_dir_check``, model_verify and
modelscope_info's O(path)).
"""

from ansible_collections.llmops.deploy.plugins.module_utils.hub_manifest import unsafe_path_reason
from ansible_collections.llmops.deploy.plugins.module_utils.marker import RESERVED_NAMES


def check_index(index_path, index, listed, selected, headers):
    """Cross-check one shard index (parsed JSON) with the model's files and the safetensors headers read.

    ``listed``: the model's files (paths); ``selected``: those include/exclude keep (the same as ``listed`` for a
    whole directory); ``headers``: ``{path: parsed safetensors header}``.

    Returns ``(problems, warnings, shards)``: problems (no weight_map, an unsafe shard name, a shard that is not
    among the model's files, a tensor its shard's header lacks) make the model unusable; warnings (a named shard left
    out by include/exclude, ``metadata.total_size`` different from the shards' tensor bytes: some published
    repositories carry a stale value) do not. ``shards``: the shard paths the index names, sorted.
    """
    problems, warnings = [], []
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        return ["%s has no weight_map" % index_path], warnings, []
    base = index_path.rsplit("/", 1)[0] if "/" in index_path else ""
    shards = {}
    for tensor, shard in sorted(weight_map.items()):
        if not isinstance(shard, str) or unsafe_path_reason(shard, RESERVED_NAMES) or "/" in shard:
            problems.append("%s names an unsafe shard %r" % (index_path, shard))
            continue
        shards.setdefault("%s/%s" % (base, shard) if base else shard, []).append(tensor)
    data_bytes = 0
    complete = True
    for shard in sorted(shards):
        if shard not in listed:
            problems.append("%s names shard %s, which is not among the model's files" % (index_path, shard))
            complete = False
            continue
        if shard not in selected:
            warnings.append("%s names shard %s, which include/exclude leave out: the weights summary lacks its "
                            "tensors" % (index_path, shard))
            complete = False
            continue
        header = headers.get(shard)
        if header is None:
            # Not a safetensors shard, or its header could not be read (reported by the caller).
            complete = False
            continue
        missing = [t for t in shards[shard] if t not in header["tensors"]]
        if missing:
            problems.append("%s: shard %s lacks %d tensor(s) the index names, e.g. %s" % (
                index_path, shard, len(missing), missing[0]))
        data_bytes += header["data_bytes"]
    meta = index.get("metadata")
    total = meta.get("total_size") if isinstance(meta, dict) else None
    if complete and isinstance(total, int) and not isinstance(total, bool) and total != data_bytes:
        warnings.append("%s: metadata.total_size is %d but its shards hold %d tensor bytes" % (
            index_path, total, data_bytes))
    return problems, warnings, sorted(shards)
