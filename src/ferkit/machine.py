"""What this machine is, in one line, for results files and benchmark headers.

Speed figures (and an int8 model's accuracy) depend on the CPU's vector extensions: AVX2 or AVX-512, VNNI
(fast int8 dot products), native bf16, AMX tiles. Every benchmark and published run describes its machine the same
way.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
AMX_FLAG = "amx_tile"


def _cpuinfo(text: str | None) -> str:
    if text is not None:
        return text
    try:
        return CPUINFO.read_text()
    except OSError:  # not Linux, or no /proc: fall back to what platform knows
        return ""


def _field(text: str, key: str) -> str:
    """The first ``key : value`` line's value in a cpuinfo text ('' where there is none)."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key and value.strip():
            return value.strip()
    return ""


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``model name`` in /proc/cpuinfo), else what ``platform`` reports."""
    return _field(_cpuinfo(cpuinfo), "model name") or platform.processor() or platform.machine() or "CPU"


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo is not there)."""
    return frozenset(_field(_cpuinfo(cpuinfo), "flags").split())


def has_vnni(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has VNNI int8 dot products (AVX-512 VNNI or AVX-VNNI): int8 models run ~2x faster."""
    return bool(VNNI_FLAGS & cpu_flags(cpuinfo))


def has_amx(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has AMX matrix tiles (Intel Sapphire Rapids and later): its bf16 and int8 kernels, and so
    a bf16 training run's numbers, differ from an AVX-512 CPU's."""
    return AMX_FLAG in cpu_flags(cpuinfo)


def cpu_capability(cpuinfo: str | None = None) -> str:
    """The instruction set torch dispatches to here with VNNI and AMX noted, e.g. ``AVX2, no VNNI`` or
    ``AVX512, with VNNI, AMX``."""
    text = _cpuinfo(cpuinfo)  # read once for both flags
    vnni = "with VNNI" if has_vnni(text) else "no VNNI"
    amx = ", AMX" if has_amx(text) else ""
    return f"{torch.backends.cpu.get_cpu_capability()}, {vnni}{amx}"


def describe(cpuinfo: str | None = None) -> str:
    """One line: CPU model, core count, capability and torch, e.g. ``AMD EPYC 7B13, 2 cores, AVX2, no VNNI,
    torch 2.13.0+cpu``."""
    text = _cpuinfo(cpuinfo)  # read once for both parts
    return f"{cpu_name(text)}, {os.cpu_count()} cores, {cpu_capability(text)}, torch {torch.__version__}"
