# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""capacity_check's options: its argument spec (shared with the llmops.deploy.capacity_plan filter, which checks the
same options on the controller) and the declared hardware's keys and types.

Plain data, importing only the model options it extends (model_spec): capacity_check with ``judge=controller`` only probes, and
so compiles only this and its probing code on the host, not the judgement (model_selection, capacity, model_names).

Standard library only (runs on targets with Python >= 3.8).
"""

from ansible_collections.llmops.deploy.plugins.module_utils import model_spec

CANDIDATE_OPTIONS = dict(
    key=dict(type="str", no_log=False),
    label=dict(type="str"),
    model=dict(type="str"),
    params=dict(type="raw"),
    precision=dict(type="str"),
    precision_source=dict(type="str", choices=["name", "given", "default"]),
    config=dict(type="dict"),
    config_path=dict(type="path"),
    weights=dict(type="dict"),
    disk_required_bytes=dict(type="int"),
)
CHECK_REQUIRED_ONE_OF = [tuple(group) + ("candidates",) for group in model_spec.MODEL_SPEC_REQUIRED_ONE_OF]
CHECK_MUTUALLY_EXCLUSIVE = model_spec.MODEL_SPEC_MUTUALLY_EXCLUSIVE + [
    ("candidates", name) for name in ("model", "params", "config", "config_path", "weights")]


# The declared hardware's keys and types, checked by the argument spec (capacity_check and the capacity_plan filter
# alike): unknown keys and wrong types are refused naming the key; values are then checked by
# capacity.normalize_hardware.
GPU_OPTIONS = dict(
    index=dict(type="int"),
    vendor=dict(type="str"),
    name=dict(type="str"),
    uuid=dict(type="str"),
    pci_bus_id=dict(type="str"),
    driver_version=dict(type="str"),
    memory_total_mib=dict(type="int"),
    memory_used_mib=dict(type="int"),
    memory_free_mib=dict(type="int"),
    compute_capability=dict(type="raw"),
    arch=dict(type="str"),
    unified_memory=dict(type="bool"),
    gpu_class=dict(type="str"),
)
HARDWARE_OPTIONS = dict(
    gpus=dict(type="list", elements="dict", options=GPU_OPTIONS),
    gpu_model=dict(type="str"),
    gpu_count=dict(type="int"),
    memory_total_mib=dict(type="int"),
    cpu_cores=dict(type="int"),
    disk_free_mib=dict(type="int"),
    disk_path=dict(type="str"),
)


def declared_hardware(hardware):
    """The declared hardware without the keys the argument spec filled with None (absent means: probe it)."""
    if hardware is None:
        return None
    out = dict((k, v) for k, v in hardware.items() if v is not None)
    if out.get("gpus") is not None:
        out["gpus"] = [dict((k, v) for k, v in gpu.items() if v is not None) for gpu in out["gpus"]]
    return out


# capacity_check with judge=controller and probe=false (the module and its action refuse it alike).
JUDGE_CONTROLLER_WITHOUT_PROBE = ("judge=controller probes the host; with probe=false there is nothing to do here: judge "
                                  "the declared hardware with the llmops.deploy.capacity_plan filter instead")


def hardware_argument_spec():
    """The ``hardware`` option's spec (capacity_check and hardware_probe), a fresh copy each call."""
    return dict(type="dict", options=dict((key, dict(value)) for key, value in HARDWARE_OPTIONS.items()),
                mutually_exclusive=[["gpus", "gpu_model"], ["gpus", "gpu_count"]])


def check_argument_spec():
    """capacity_check's argument spec (a fresh copy each call)."""
    spec = model_spec.model_spec_argument_spec()
    spec.update(
        target=dict(type="str", choices=["gpu", "cpu"], default="gpu"),
        model_dir=dict(type="path", default="/opt/llmops/models"),
        disk_required_bytes=dict(type="int"),
        hardware=hardware_argument_spec(),
        probe=dict(type="bool", default=True),
        candidates=dict(type="list", elements="dict", options=dict(
            (key, dict(value)) for key, value in CANDIDATE_OPTIONS.items())),
        scenario=dict(type="str"),
        fail_on=dict(type="str", choices=["insufficient", "tight", "never"], default="insufficient"),
        calibrations=dict(type="list", elements="dict"),
    )
    return spec


def controller_options(params):
    """With ``judge=controller``: the judgement options a host's probe hands to the controller (the
    ``llmops.deploy.capacity_plans`` filter), i.e. the checked parameters that are set, without the hardware (the
    probe returns it) and the options that only steer the probe."""
    return dict((key, value) for key, value in params.items()
                if value is not None and key not in ("hardware", "probe", "judge"))
