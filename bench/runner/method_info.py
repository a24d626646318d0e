"""What the driver knows of a method — its name, task kinds, checked hyper-parameters, search
space — without running a submitted file's code in the driver.

Planning a suite needs a method's name and its hyper-parameters checked against its `HParams`;
`tune` needs its search space. For a built-in or an installed plug-in (trusted like any installed
package) the class is asked directly. A submitted file (`FILE.py[:Name]`) is asked in a method
process (bench/runner/method_process.py, with its sandbox), so its import-time code runs only
there: the driver gets plain data back (`MethodDescription`) and every answer is checked here.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from bench.core.errors import ConfigError, PluginError
from bench.runner.field_types import check_fields
from bench.runner.plugins import is_file_reference

DESCRIBE_TIMEOUT_S = 120.0  # importing a file and checking its hyper-parameters: seconds, unless it hangs


@dataclass(frozen=True)
class HParamQuery:
    kind: str  # task kind
    hparams: str  # the overrides as sorted JSON (hashable, plain data)
    what: str  # for messages: "method 'x' hyper-parameters"


@dataclass
class MethodDescription:
    """A method as plain data (what a method process hands back about a file)."""

    name: str
    task_kinds: tuple
    doc: str
    checked: dict = field(default_factory=dict)  # HParamQuery -> checked overrides, or the error message (str)
    resolved: dict = field(default_factory=dict)  # HParamQuery -> every resolved value (dict)
    spaces: dict = field(default_factory=dict)  # HParamQuery -> concrete search space ({} when not tunable)


def _answer(method_cls, queries: list[HParamQuery]) -> MethodDescription:
    """Each query against the class, errors as messages (also what the built-in handle does)."""
    from methods.base import hparams_dict
    from methods.search_space import declared_space, resolve_space

    desc = MethodDescription(method_cls.name, tuple(method_cls.task_kinds),
                             ((method_cls.__doc__ or "").strip().splitlines() or [""])[0])
    for q in queries:
        try:
            checked = check_fields(method_cls.HParams, json.loads(q.hparams), q.what)
            resolved = method_cls.default_hparams(q.kind, **checked)
            desc.checked[q] = checked
            desc.resolved[q] = hparams_dict(resolved)
        except (ConfigError, ValueError, TypeError) as exc:
            desc.checked[q] = " ".join(str(exc).split())
            continue
        try:  # only `tune` needs it: a space that does not resolve fails there, not in planning a run
            desc.spaces[q] = resolve_space(declared_space(method_cls), resolved)
        except (ValueError, TypeError) as exc:
            desc.spaces[q] = " ".join(str(exc).split())
    return desc


@dataclass
class DescribeRequest:
    """Describe a file method in a method process: import it (validated, its name free) and answer queries."""

    ref: str
    sources: dict
    queries: list
    workdir: str = ""  # set by the runner, as for an UnlearnRequest
    env: dict = field(default_factory=dict)
    sys_path: list = field(default_factory=list)
    warm: Any = None  # no task to warm: nothing is built
    confinement: Any = None  # set by the runner

    def run(self) -> MethodDescription:
        from bench.runner.plugins import check_name_free, resolve_method

        method_cls = resolve_method(self.ref, self.sources)
        check_name_free(method_cls)
        return _answer(method_cls, self.queries)


class MethodHandle:
    """The driver's view of one method: `name`, `task_kinds`, `doc`, and per (task kind, overrides)
    the checked overrides (`check_hparams`), every resolved value (`resolved`) and the search space."""

    def __init__(self, ref: str, method_cls=None, source=None):
        self.ref, self._cls, self._source = ref, method_cls, source
        self._desc: MethodDescription | None = None

    @property
    def is_file(self) -> bool:
        return self._cls is None

    def _describe(self, queries: list[HParamQuery]) -> MethodDescription:
        if self._cls is not None:
            return _answer(self._cls, queries)
        from bench.runner.method_process import MethodProcessError, method_runner

        request = DescribeRequest(self.ref, {self.ref: self._source}, queries)
        try:
            desc = method_runner().call(request, DESCRIBE_TIMEOUT_S)
        except MethodProcessError as exc:
            where = os.path.basename(self._source.path)
            if exc.error_type in ("PluginError", "ConfigError"):
                raise PluginError(str(exc)) from None
            raise PluginError(f"{where} failed to load in a method process: {exc}") from None
        if not isinstance(desc, MethodDescription):
            raise PluginError(f"the method process answered {type(desc).__name__}, not a description")
        return desc

    def _get(self, q: HParamQuery) -> MethodDescription:
        if self._desc is None or (q is not None and q not in self._desc.checked):
            got = self._describe([q] if q is not None else [])
            if self._desc is not None:
                got.checked, got.resolved, got.spaces = ({**old, **new} for old, new in (
                    (self._desc.checked, got.checked), (self._desc.resolved, got.resolved), (self._desc.spaces, got.spaces)))
            self._desc = got
        return self._desc

    @property
    def name(self) -> str:
        return self._cls.name if self._cls is not None else self._get(None).name

    @property
    def task_kinds(self) -> tuple:
        return tuple(self._cls.task_kinds) if self._cls is not None else self._get(None).task_kinds

    @property
    def doc(self) -> str:
        return self._get(None).doc

    def _query(self, kind: str, hparams: dict, what: str) -> HParamQuery:
        return HParamQuery(kind, json.dumps(hparams, sort_keys=True), what)

    def check_hparams(self, kind: str, hparams: dict, what: str) -> dict:
        """`hparams` checked and coerced against the method's HParams, its defaults for `kind` applied
        without error (else ConfigError naming `what`); returns the checked overrides."""
        q = self._query(kind, hparams, what)
        checked = self._get(q).checked[q]
        if isinstance(checked, str):
            raise ConfigError(checked)
        return dict(checked)

    def resolved(self, kind: str, hparams: dict) -> SimpleNamespace:
        """Every hyper-parameter the job runs with (attribute access, as on an HParams instance)."""
        q = self._query(kind, hparams, f"method {self.ref!r} hyper-parameters")
        self.check_hparams(kind, hparams, q.what)
        return SimpleNamespace(**self._desc.resolved[q])

    def search_space(self, kind: str, hparams: dict) -> dict:
        q = self._query(kind, hparams, f"method {self.ref!r} hyper-parameters")
        self.check_hparams(kind, hparams, q.what)
        space = self._desc.spaces[q]
        if isinstance(space, str):
            raise ValueError(space)  # as resolve_space raised it before
        return dict(space)


def method_handle(ref: str, sources: dict | None = None) -> MethodHandle:
    """A registry name (built-in or installed: the class) or FILE.py[:Name] (asked in a method process;
    `sources`: the driver's copy of the file, else it is read now)."""
    if is_file_reference(ref):
        from bench.runner.plugins import read_method_source

        return MethodHandle(ref, source=(sources or {}).get(ref) or read_method_source(ref))
    from methods.base import METHODS

    return MethodHandle(ref, METHODS.get(ref))
