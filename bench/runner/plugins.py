"""Loading methods by registry name or from a plain file (`FILE.py[:ClassName]`)."""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import re
import sys
import types
from pathlib import Path

from bench.core.errors import ConfigError, PluginError
from methods.base import BUILTIN_METHOD_MODULES, METHODS, Method

NAME_FORMAT = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # lower-case words joined by hyphens (docs/ARCHITECTURE.md)


def check_name_format(name: str, what: str) -> None:
    """Method names and labels are lower-case with hyphens: they become file names, table rows and plot text."""
    if not isinstance(name, str) or not NAME_FORMAT.match(name):
        raise ConfigError(f"{what} {name!r} must be lower-case letters and digits joined by hyphens (e.g. 'my-method')")


def builtin_names() -> set[str]:
    return {n for n in METHODS.names() if METHODS.get(n).__module__ in BUILTIN_METHOD_MODULES}


def is_file_reference(ref: str) -> bool:
    return ref.split(":")[0].endswith(".py")


@dataclasses.dataclass(frozen=True)
class MethodSource:
    """A method file read on the driver, shipped to workers by content: a worker never opens the
    user's path (it may not exist there, or mean another file relative to another directory)."""

    path: str  # absolute, on the driver (messages, tracebacks, module name)
    cls_name: str  # "" when the file defines exactly one Method subclass
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def read_method_source(ref: str) -> MethodSource:
    """FILE.py[:ClassName] -> its text, the path resolved against this (the driver's) directory."""
    path_str, _, cls_name = ref.partition(":")
    path = Path(path_str).expanduser().resolve()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PluginError(f"method file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"method file {path} is unreadable: {type(exc).__name__}: {exc}") from None
    return MethodSource(str(path), cls_name, text)


def load_method_file(ref: str):
    """Import FILE.py and return its Method subclass (the named one, or the only one defined there)."""
    return load_method_source(read_method_source(ref))


def load_method_source(src: MethodSource):
    """Execute a shipped method file's text as a module and return its validated Method subclass."""

    path = Path(src.path)
    cls_name = src.cls_name
    METHODS.names()  # built-ins first, so a plug-in's @register_method meets them (and their names)
    mod_name = "unlearn_bench_plugin_" + hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module = types.ModuleType(mod_name)
    module.__file__ = str(path)
    sys.modules[mod_name] = module
    try:
        exec(compile(src.text, str(path), "exec"), module.__dict__)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise PluginError(f"{path.name} failed to import: {type(exc).__name__}: {exc}") from exc
    candidates = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, Method) and obj is not Method and obj.__module__ == mod_name
    }
    if cls_name:
        if cls_name not in vars(module):
            raise PluginError(f"{path.name} defines no {cls_name!r}; Method classes there: {', '.join(candidates) or 'none'}")
        cls = vars(module)[cls_name]
        if not (inspect.isclass(cls) and issubclass(cls, Method)):
            raise PluginError(f"{path.name}:{cls_name} is not a subclass of methods.base.Method")
    else:
        if not candidates:
            raise PluginError(f"{path.name} defines no subclass of methods.base.Method (import it with `from bench import Method`)")
        if len(candidates) > 1:
            raise PluginError(f"{path.name} defines several methods ({', '.join(candidates)}); pick one with {path.name}:ClassName")
        cls = next(iter(candidates.values()))
    validate_method_class(cls, where=f"{path.name}:{cls.__name__}")
    return cls


def validate_method_class(cls, where: str) -> None:
    """Interface checks with precise messages (name, HParams dataclass, unlearn signature)."""

    if not (inspect.isclass(cls) and issubclass(cls, Method)):
        raise PluginError(f"{where}: not a subclass of bench.Method")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"{where}: set a class attribute `name = \"my-method\"`")
    if not NAME_FORMAT.match(name):
        raise PluginError(f"{where}: name {name!r} must be lower-case letters and digits joined by hyphens (e.g. 'my-method')")
    if not dataclasses.is_dataclass(cls.HParams):
        raise PluginError(f"{where}: HParams must be a @dataclass (got {cls.HParams!r})")
    missing = [f.name for f in dataclasses.fields(cls.HParams) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PluginError(f"{where}: every hyper-parameter needs a default; missing for {', '.join(missing)}")
    if inspect.isabstract(cls):
        raise PluginError(f"{where}: does not implement unlearn(self, model, forget, remain, budget, ctx)")
    params = list(inspect.signature(cls.unlearn).parameters)
    if params[:6] != ["self", "model", "forget", "remain", "budget", "ctx"]:
        raise PluginError(
            f"{where}: unlearn must have the signature unlearn(self, model, forget, remain, budget, ctx); got ({', '.join(params)})"
        )


def check_name_free(cls) -> None:
    """A submitted method may not take a built-in's name (its rows would merge with the built-in's)."""

    if cls.name in METHODS:
        owner = METHODS.get(cls.name)
        if owner is not cls and owner.__module__ in BUILTIN_METHOD_MODULES:
            raise PluginError(f"method name {cls.name!r} is taken by the built-in {owner.__module__}.{owner.__qualname__}; choose another `name`")


def load_submission(ref: str):
    """`submit`'s argument: FILE.py[:Name], or the name of a method installed through the
    `unlearn_bench.methods` entry-point group.  Returns the validated class."""

    if is_file_reference(ref):
        cls = load_method_file(ref)
        check_name_free(cls)
        return cls
    if ref not in METHODS:
        raise PluginError(
            f"{ref!r} is neither a .py file nor an installed method; installed: {', '.join(METHODS.names())} "
            "(plug-ins register under the `unlearn_bench.methods` entry-point group)"
        )
    cls = METHODS.get(ref)
    validate_method_class(cls, where=f"installed method {ref!r} ({cls.__module__}.{getattr(cls, '__qualname__', cls)})")
    return cls


def resolve_method(ref: str, sources: dict[str, MethodSource] | None = None):
    """Registry name, or FILE.py[:Name] (from `sources`, the driver's copy, when it is there)."""

    if sources and ref in sources:
        return load_method_source(sources[ref])
    if is_file_reference(ref):
        return load_method_file(ref)
    return METHODS.get(ref)
