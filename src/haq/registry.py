"""One name registry for everything users pick by name (search strategies, cost models).

Built-in entries register themselves when their module is imported; ``Registry`` imports those
modules on first use (``builtins``), so ``import haq`` stays cheap. A name is taken once: a
second, different entry under the same name is refused (it would silently replace the first,
and which one wins would depend on import order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from haq.errors import HaqError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry.

    Args:
        kind: what the entries are, for messages ("strategy", "cost model").
        error: the ``HaqError`` subclass raised for unknown or duplicate names.
        builtins: imports the modules that register the built-in entries; called once, lazily.
    """

    def __init__(self, kind: str, error: type[HaqError],
                 builtins: Callable[[], None] | None = None) -> None:
        self.kind, self.error = kind, error
        self._builtins = builtins
        self._loaded = builtins is None
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` under ``name``; registering the same entry again is a no-op.

        Raises:
            error: ``name`` is empty or already holds a different entry.
        """
        if not isinstance(name, str) or not name.strip():
            raise self.error(f"a {self.kind} needs a non-empty name, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old != entry:
            raise self.error(f"{self.kind} name {name!r} is already registered ({_label(old)});"
                             f" register {_label(entry)} under another name")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plug-in unloading, a test cleaning up); unknown names are ignored."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            error: no such name; the message lists the registered ones.
        """
        self._load()
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}; available: "
                             f"{', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load(self) -> None:
        if not self._loaded and self._builtins is not None:
            self._loaded = True  # before the imports: they call ``add`` on this registry
            self._builtins()


def _label(entry: object) -> str:
    cls = getattr(entry, "cls", entry)  # cost models register (class, preset) entries
    module, name = getattr(cls, "__module__", ""), getattr(cls, "__qualname__", repr(cls))
    return f"{module}.{name}" if module else name
