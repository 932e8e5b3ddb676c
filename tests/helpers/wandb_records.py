"""Read what an offline W&B run recorded: offline mode writes no config.yaml or wandb-summary.json, only the
run's transaction log (`offline-run-*/run-*.wandb`): a LevelDB-style log of protobuf `Record`s."""
import glob
import json
import os
import struct
import time

from wandb.proto import wandb_internal_pb2

_FILE_HEADER = 7  # b":W&B", a 2-byte magic number, a 1-byte version
_BLOCK = 32 * 1024
_CHUNK_HEADER = struct.Struct("<IHB")  # checksum, length, chunk type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    assert data[:4] == b":W&B", "not a W&B transaction log"
    position, pending = _FILE_HEADER, b""
    while position + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _CHUNK_HEADER.size:  # the block's tail is padding
            position += left_in_block
            continue
        _, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        position += _CHUNK_HEADER.size
        if position + length > len(data):  # still being written
            return
        chunk = data[position:position + length]
        position += length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk


class OfflineRun:
    """config (top-level keys -> values), summary, history rows, artifacts, exit code and run record of one run."""

    def __init__(self, run_dir: str, wait_s: float = 30.0):
        (log_path,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
        # wandb-core, a separate process, may still be writing the log when wandb.finish returns: the exit
        # record comes last.
        deadline = time.monotonic() + wait_s
        while True:
            self._read(log_path)
            if self.exit_code is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)

    def _read(self, log_path: str) -> None:
        self.config, self.summary, self.history, self.exit_code, self.run = {}, {}, [], None, None
        self.artifacts = []  # (name, type, file paths)
        with open(log_path, "rb") as f:
            for payload in _payloads(f.read()):
                record = wandb_internal_pb2.Record()
                record.ParseFromString(payload)
                self._add(record)

    def _add(self, record) -> None:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            self.run = record.run
            self.config.update(_items(record.run.config.update))
        elif kind == "config":
            self.config.update(_items(record.config.update))
        elif kind == "summary":
            self.summary.update(_items(record.summary.update))
        elif kind == "history":
            self.history.append(_items(record.history.item))
        elif kind == "artifact":
            artifact = record.artifact
            self.artifacts.append((artifact.name, artifact.type, sorted(e.path for e in artifact.manifest.contents)))
        elif kind == "exit":
            self.exit_code = record.exit.exit_code


def _items(items) -> dict:
    out = {}
    for item in items:
        key = item.key or "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


def offline_runs(directory: str) -> list[OfflineRun]:
    return [OfflineRun(path) for path in sorted(glob.glob(os.path.join(directory, "wandb", "offline-run-*")))]
