"""What the CPU can do fast, as far as the choice of a precision policy needs to know."""
from __future__ import annotations

import platform

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # Linux /proc/cpuinfo names of native bfloat16 arithmetic


def supports_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises native bfloat16 instructions (oneDNN then runs mixed_bfloat16 faster).

    Only Linux reports the flags where we can read them; elsewhere the answer is a conservative False.
    """
    if platform.system() != "Linux":
        return False
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[-1].split())
                    return any(flag in flags for flag in BF16_FLAGS)
    except OSError:
        return False
    return False
