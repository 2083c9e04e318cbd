"""A small timm-style registry: names map to factories, unknown names and parameters fail loudly."""
from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, defaults: dict[str, Any] | None = None, **meta: Any):
        def deco(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, factory, dict(defaults or {}), dict(meta))
            return factory

        return deco

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise KeyError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}"
            )
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def check_params(self, name: str, params: dict[str, Any]) -> None:
        """Raise a clear TypeError naming the unknown parameters and the known ones."""
        entry = self.get(name)
        sig = inspect.signature(entry.factory)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        known = [p for p in sig.parameters if p != "self"]
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise TypeError(
                f"{self.kind} {name!r} got unknown parameter(s) {unknown}; "
                f"known parameters: {', '.join(known)}"
            )
