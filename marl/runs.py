"""Run folders: everything a run produces, in one place that analysis reads later.

```
runs/<name>-<YYYYmmdd-HHMMSS>/
  config.yaml          the resolved config (every default filled in)
  metrics.jsonl        one JSON object per line, flushed as written
  transcripts.msgpack  one msgpack frame per episode (marl.codec)
  summary.json         the aggregated result, written atomically at the end
```

Lines and frames are appended and flushed one by one, so a run killed half way keeps
everything it wrote before; files that are replaced whole go through ``write_atomic``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from marl.codec import TranscriptWriter


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunFolder:
    CONFIG = "config.yaml"
    METRICS = "metrics.jsonl"
    TRANSCRIPTS = "transcripts.msgpack"
    SUMMARY = "summary.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, output_dir: str | Path, name: str) -> RunFolder:
        """A new folder ``<output_dir>/<name>-<timestamp>`` (suffixed if that exists)."""
        parent = Path(output_dir)
        parent.mkdir(parents=True, exist_ok=True)
        stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        for k in range(1000):
            path = parent / (stem if k == 0 else f"{stem}-{k}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path)
        raise FileExistsError(f"could not create a new run folder under {parent}")

    def write_config(self, resolved: dict[str, Any]) -> None:
        write_atomic(self.path / self.CONFIG, yaml.safe_dump(resolved, sort_keys=False))

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` and flush it to disk."""
        with open(self.path / self.METRICS, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()

    def transcripts(self) -> TranscriptWriter:
        return TranscriptWriter(self.path / self.TRANSCRIPTS)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.path / self.SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return json.loads((self.path / self.SUMMARY).read_text())
