"""The one-line machine description that results files and benchmark headers share."""

from __future__ import annotations

import os

import torch

from ferkit.machine import cpu_capability, cpu_flags, cpu_name, describe, has_amx, has_vnni

AVX2_CPU = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu sse2 avx avx2 fma
processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu sse2 avx avx2 fma
"""
VNNI_CPU = AVX2_CPU.replace("avx2 fma", "avx2 fma avx512f avx512_vnni avx512_bf16")
AMX_CPU = VNNI_CPU.replace("avx512_bf16", "avx512_bf16 amx_bf16 amx_tile amx_int8")


def test_reads_the_model_name_and_the_first_cpus_flags() -> None:
    assert cpu_name(AVX2_CPU) == "AMD EPYC 7B13 64-Core Processor"
    assert cpu_flags(AVX2_CPU) == {"fpu", "sse2", "avx", "avx2", "fma"}


def test_vnni_comes_from_either_flag() -> None:
    assert not has_vnni(AVX2_CPU)
    assert has_vnni(VNNI_CPU)
    assert has_vnni(AVX2_CPU.replace("avx2 fma", "avx2 avx_vnni"))
    assert cpu_capability(AVX2_CPU).endswith(", no VNNI")
    assert cpu_capability(VNNI_CPU).endswith(", with VNNI")
    assert cpu_capability(VNNI_CPU).startswith(torch.backends.cpu.get_cpu_capability())


def test_amx_is_noted_only_where_the_cpu_has_its_tiles() -> None:
    assert not has_amx(AVX2_CPU) and not has_amx(VNNI_CPU)
    assert has_amx(AMX_CPU)
    assert cpu_capability(AMX_CPU).endswith(", with VNNI, AMX")
    assert "AMX" not in cpu_capability(VNNI_CPU)


def test_without_cpuinfo_it_falls_back_to_what_platform_reports() -> None:
    import platform

    assert cpu_name("") == (platform.processor() or platform.machine() or "CPU")
    assert cpu_name("model name\t: Test CPU 9000\nflags\t: avx2\n") == "Test CPU 9000"
    assert cpu_flags("") == frozenset() and cpu_flags("flags\t: avx2 fma\n") == {"avx2", "fma"}
    line = describe("")
    assert f"{os.cpu_count()} cores" in line and f"torch {torch.__version__}" in line and "no VNNI" in line


def test_describe_puts_the_parts_in_order() -> None:
    line = describe(VNNI_CPU)
    assert line.startswith("AMD EPYC 7B13 64-Core Processor, ")
    assert line.index("cores") < line.index("with VNNI") < line.index("torch")
