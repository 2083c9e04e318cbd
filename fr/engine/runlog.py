"""The CSV logs of a run folder: ``train_log.csv`` (one row per logged step) and ``eval_log.csv``
(verification during training). Rows are appended as training goes; a resumed run first drops the rows
written after the checkpoint it restarts from, so every row belongs to the trajectory that continues."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .atomic import atomic_open

#: the first columns of ``train_log.csv``; the head's statistics (``head_*``) and ``grad_norm`` follow, sorted
LOG_COLUMNS = ("step", "epoch", "lr", "loss", "acc", "img_per_s", "elapsed_s")


class RunLog:
    """``train_log.csv`` and ``eval_log.csv`` in ``run_dir``. Nothing is written when ``run_dir`` is None or
    ``writer`` is False (every rank but the main one)."""

    def __init__(self, run_dir: str | Path | None, *, writer: bool = True):
        run_dir = Path(run_dir) if run_dir is not None and writer else None
        self.train_path = run_dir / "train_log.csv" if run_dir else None
        self.eval_path = run_dir / "eval_log.csv" if run_dir else None
        self._train_columns: list[str] | None = None

    def train(self, row: dict[str, Any]) -> None:
        """Append a training row; the columns are fixed by the first row: :data:`LOG_COLUMNS`, then the rest
        sorted."""
        if self._train_columns is None:
            self._train_columns = list(LOG_COLUMNS) + sorted(k for k in row if k not in LOG_COLUMNS)
        _append(self.train_path, row, self._train_columns)

    def eval(self, row: dict[str, Any]) -> None:
        """Append a verification row (columns in the row's order)."""
        _append(self.eval_path, row, list(row))

    def clear(self) -> None:
        """Remove both logs: a run that starts again from step 0 (its earlier session was killed before its
        first checkpoint) must not append to the rows of that session."""
        for path in (self.train_path, self.eval_path):
            if path is not None:
                path.unlink(missing_ok=True)

    def truncate(self, step: int) -> None:
        """Drop the rows of both logs past ``step`` (written after the checkpoint a resumed run restarts from)."""
        for path in (self.train_path, self.eval_path):
            if path is None or not path.exists():
                continue
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            if not rows:
                continue
            keep = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
            with atomic_open(path, "w") as f:
                csv.writer(f).writerows(keep)


def _append(path: Path | None, row: dict[str, Any], columns: list[str]) -> None:
    if path is None:
        return
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
