"""Name -> class registries, filled by decorators and by entry-point groups."""
from __future__ import annotations

from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

from bench.core.errors import PluginError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtin_modules = builtin_modules
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None)
            if not key:
                raise PluginError(f"{self.kind} {obj!r} has no name; set `name = \"...\"` or pass one to the decorator")
            existing = self._items.get(key)
            if existing is not None and existing is not obj and _qualname(existing) != _qualname(obj):
                raise PluginError(f"{self.kind} name {key!r} is already taken by {_qualname(existing)}")
            self._items[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def import_builtins(self) -> None:
        """Import the built-in modules (registering their items) without scanning entry points yet."""
        import importlib

        for mod in self.builtin_modules:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as exc:  # a built-in family not present in this install
                if exc.name != mod:
                    raise

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self.import_builtins()
        if self.entry_point_group:
            for ep in metadata.entry_points(group=self.entry_point_group):
                try:
                    obj = ep.load()
                except Exception as exc:  # a broken third-party plug-in must not break the suite
                    raise PluginError(f"{self.kind} plug-in {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
                self._items.setdefault(ep.name, obj)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
