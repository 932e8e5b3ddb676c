"""Where the tests find this checkout and the real SQuAD files (../shared beside the repository)."""
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"  # committed files the tests read (parity logits, the SQuAD reference)
SHARED_SQUAD = REPO.parent / "shared" / "data" / "squad"


def shared_file(name: str) -> pathlib.Path:
    path = SHARED_SQUAD / name
    if not path.exists():
        pytest.skip(f"real SQuAD data not available: {path} is absent (it lives in ../shared beside the repo)")
    return path
