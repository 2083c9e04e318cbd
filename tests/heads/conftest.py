"""The head tests import their helpers (``oracles``, ``sharding``) by module name from this folder, in this process
and in the processes the sharded tests spawn."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
