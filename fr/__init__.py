"""fr: face-recognition margin losses, data, evaluation and training, for the replication book."""
from __future__ import annotations

__version__ = "0.1.0"

from .heads import create_head, head_info, list_heads  # noqa: E402

__all__ = ["create_head", "list_heads", "head_info", "__version__"]
