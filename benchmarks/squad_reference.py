"""The reference side of the benchmarks that compare qaexp with transformers' SQuAD code.

transformers 5 removed `transformers.data.processors.squad` and `transformers.data.metrics.squad_metrics`, which
benchmarks/postprocess.py and benchmarks/feature_prep.py compare against. Where transformers < 5 is installed the
benchmarks run that code live; otherwise they read what tests/fixtures/squad_reference/make_reference.py recorded
with transformers 4.57.6 for the same data file (matched by its SHA-256), and say so. With neither, the reference
side is skipped with one printed line.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Optional

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "squad_reference"
NEEDS = ("the side-by-side run needs transformers<5 (transformers 5 removed transformers.data.processors.squad and "
         "transformers.data.metrics.squad_metrics): pip install 'transformers==4.57.6' in a separate venv")


def live() -> bool:
    """Whether transformers' own SQuAD reference code can be imported (transformers < 5)."""
    try:
        import transformers.data.metrics.squad_metrics  # noqa: F401
        import transformers.data.processors.squad  # noqa: F401
    except ImportError:
        return False
    return True


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def record_path(benchmark: str, data: Path, **settings) -> Path:
    """Where the recorded reference of `benchmark` on `data` (with `settings`, e.g. subset=10) lives."""
    tail = "".join(f"-{key}{value}" for key, value in sorted(settings.items()))
    return FIXTURES / benchmark / f"{file_sha256(data)[:16]}{tail}.json"


# A record larger than this (the whole dev set's predictions, about 0.5 MB) is stored gzipped (about 0.13 MB).
GZIP_ABOVE_BYTES = 64_000


def recorded(benchmark: str, data: Path, **settings) -> Optional[dict]:
    """The recorded reference for `data`, or None when there is none for this file and these settings."""
    path = record_path(benchmark, data, **settings)
    packed = path.with_name(path.name + ".gz")
    if path.exists():
        record = json.loads(path.read_text(encoding="utf-8"))
    elif packed.exists():
        record = json.loads(gzip.decompress(packed.read_bytes()).decode("utf-8"))
    else:
        return None
    return record if record["data_sha256"] == file_sha256(data) else None


def write(benchmark: str, data: Path, record: dict, **settings) -> Path:
    path = record_path(benchmark, data, **settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"data_sha256": file_sha256(data), **record}, indent=1, ensure_ascii=False, sort_keys=True)
    packed = path.with_name(path.name + ".gz")
    for stale in (path, packed):
        stale.unlink(missing_ok=True)
    if len(text.encode("utf-8")) > GZIP_ABOVE_BYTES:
        # mtime=0: the same record gives the same bytes, so regenerating it leaves git with nothing to commit
        packed.write_bytes(gzip.compress((text + "\n").encode("utf-8"), compresslevel=9, mtime=0))
        return packed
    path.write_text(text + "\n", encoding="utf-8")
    return path
