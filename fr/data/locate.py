"""Where data sets are: one lookup rule for RecordIO training sets and one for ``.bin`` verification sets.

Everything that finds a data set goes through :func:`find_train_set` or :func:`find_bin`. An absolute path is
taken as it is. Anything else is a name under the data root (``$FR_DATA``, :func:`fr.paths.data_root`), never
under the current directory (notebooks run in their own), found in the shared layout (``celeba_train/``,
``verification/``) or in insightface's flat one (``train.rec``, ``lfw.bin`` in the root itself)::

    find_train_set()                    # <root>/celeba_train/train.rec, or <root>/train.rec
    find_train_set("casia_webface")     # <root>/casia_webface/train.rec, or <root>/train.rec
    find_train_set("sets/ms1m.rec")     # <root>/sets/ms1m.rec
    find_bin("lfw")                     # <root>/verification/lfw.bin, <root>/lfw.bin, or <root>/lfw
"""
from __future__ import annotations

from pathlib import Path

from ..paths import data_root, find_data

#: the training set of this book's CPU chapters (CelebA identities, aligned)
DEFAULT_TRAIN_SET = "celeba_train"

_HINT = "set FR_DATA to the folder holding the data"


def find_train_set(path: str | Path | None = None) -> tuple[Path, Path, Path]:
    """``(train.rec, train.idx, property)`` of a RecordIO training set.

    ``path``: an absolute folder holding ``train.rec`` or an absolute ``.rec`` file; a ``.rec`` path under the
    data root; or a name under the data root (a folder holding ``train.rec``, else a flat ``train.rec`` in the
    root); None is :data:`DEFAULT_TRAIN_SET`. Errors name the path looked for and the data root."""
    name = Path(DEFAULT_TRAIN_SET if path is None else path).expanduser()
    if name.is_absolute():
        rec = name / "train.rec" if name.is_dir() else name
        if not rec.exists():
            raise FileNotFoundError(f"training set {rec} does not exist")
    else:
        looked = [str(name)] if name.suffix == ".rec" else [f"{name}/train.rec", "train.rec"]
        rec = find_data(*looked)
        if rec is None:
            raise FileNotFoundError(f"no training set {str(name)!r} under the data root {data_root()}: looked for "
                                    f"{' and '.join(repr(p) for p in looked)}; {_HINT}")
    idx, prop = rec.with_suffix(".idx"), rec.parent / "property"
    for f in (idx, prop):
        if not f.exists():
            raise FileNotFoundError(f"training set incomplete: {f} is missing (need .rec, .idx and property)")
    return rec, idx, prop


def find_bin(name: str | Path) -> Path:
    """The ``.bin`` file of verification set ``name``: an absolute path, else ``verification/<name>.bin``,
    a flat ``<name>.bin`` or ``<name>`` itself under the data root. Errors name the file and the data root."""
    p = Path(name).expanduser()
    if p.is_absolute():
        if not p.exists():
            raise FileNotFoundError(f"verification set {p} does not exist")
        return p
    found = find_data(f"verification/{name}.bin", f"{name}.bin", str(name))
    if found is None:
        raise FileNotFoundError(f"no verification set {str(name)!r} under the data root {data_root()}: looked for "
                                f"'verification/{name}.bin', '{name}.bin' and '{name}'; {_HINT}")
    return found
