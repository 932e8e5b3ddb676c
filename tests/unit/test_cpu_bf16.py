"""mixed_bfloat16 warns only on CPUs without native bfloat16 instructions; mixed_float16 always warns on a CPU."""
import logging

import pytest

from qaexp.runtime import cpu, process

FLAGS_WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
FLAGS_WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"


@pytest.mark.parametrize("text, expected", [(FLAGS_WITH_BF16, True), (FLAGS_WITHOUT, False),
                                            ("flags\t: amx_bf16 amx_tile\n", True), ("no flags line\n", False)])
def test_bf16_support_is_read_from_the_cpu_flags(tmp_path, monkeypatch, text, expected):
    monkeypatch.setattr(cpu.platform, "system", lambda: "Linux")
    info = tmp_path / "cpuinfo"
    info.write_text(text)
    assert cpu.supports_bf16(str(info)) is expected


def test_bf16_support_is_false_when_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu.platform, "system", lambda: "Linux")
    assert cpu.supports_bf16(str(tmp_path / "missing")) is False
    monkeypatch.setattr(cpu.platform, "system", lambda: "Darwin")
    info = tmp_path / "cpuinfo"
    info.write_text(FLAGS_WITH_BF16)
    assert cpu.supports_bf16(str(info)) is False


@pytest.mark.parametrize("policy, has_bf16, warns", [("mixed_bfloat16", True, False), ("mixed_bfloat16", False, True),
                                                     ("mixed_float16", True, True), ("float32", False, False)])
def test_the_cpu_precision_warning_is_true(monkeypatch, caplog, policy, has_bf16, warns):
    import tensorflow as tf
    import keras

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(cpu, "supports_bf16", lambda: has_bf16)
    with caplog.at_level(logging.INFO, logger=process.log.name):
        with process.precision_policy(policy):
            assert keras.config.dtype_policy().name == policy
    assert keras.config.dtype_policy().name == "float32"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "no GPU is visible" in r.getMessage()]
    assert bool(warned) is warns
    if warns:
        assert "precision=fp32" in warned[0].getMessage()
