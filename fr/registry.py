"""A small timm-style registry: names map to factories, unknown names and parameters fail loudly."""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


def check_known(given: Iterable[str], known: Iterable[str], *, owner: str, noun: str = "parameter",
                error: Callable[[str], Exception] = TypeError, source: Callable[[str], str] | None = None) -> None:
    """The one unknown-name check of the package (head and backbone parameters, config keys).

    Raises ``error(message)`` when ``given`` holds names that are not in ``known``. The message names the
    unknown names, where each was set (``source(name)``, when given), the closest known name (difflib) and
    all known names::

        backbone 'iresnet50' got unknown parameter(s) ['layer'] (did you mean 'layers'?); known parameters: ...
    """
    known = list(known)
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    notes = {}
    for name in unknown:
        parts = [f"set in {source(name)}"] if source else []
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            parts.append(f"did you mean {close[0]!r}?")
        if parts:
            notes[name] = ", ".join(parts)
    if len(unknown) == 1:
        detail = f" ({notes[unknown[0]]})" if notes else ""
    else:
        detail = f" ({'; '.join(f'{n!r}: {t}' for n, t in notes.items())})" if notes else ""
    raise error(f"{owner} got unknown {noun}(s) {unknown}{detail}; "
                f"known {noun}s: {', '.join(known) or '(none)'}")


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

    def check_params(self, name: str, params: dict[str, Any], **kw: Any) -> None:
        """Raise :func:`check_known`'s error naming the parameters of ``params`` that the factory of ``name``
        does not take (none for a factory with ``**kwargs``); ``kw`` go to :func:`check_known`."""
        sig = inspect.signature(self.get(name).factory)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        check_known(params, [p for p in sig.parameters if p != "self"], owner=f"{self.kind} {name!r}", **kw)
