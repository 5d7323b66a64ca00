"""CostModel base class, the name registry, and the on-disk table cache."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from haq.cost._table import CostTable
from haq.errors import CostModelError, HaqError
from haq.registry import Registry
from haq.specs import LayerSpec

AUTO = "auto"


@dataclass(frozen=True)
class Param:
    """One parameter of a cost model: name, default, type and a one-line help text."""

    name: str
    default: Any
    help: str
    type: type = str
    choices: tuple[Any, ...] | None = None
    optional: bool = False  # None is an accepted value

    def coerce(self, value: Any, model: str) -> Any:
        """Check ``value`` (or parse it from a CLI string) into this parameter's type."""
        if value is None or (self.optional and isinstance(value, str)
                             and value.lower() in ("none", "null", "")):
            if self.optional:
                return None
            raise CostModelError(f"{model}: parameter {self.name!r} cannot be None")
        try:
            if self.type is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "1", "yes")
                elif not isinstance(value, bool):
                    raise ValueError(value)
            elif self.type is int:
                if isinstance(value, bool) or (isinstance(value, float)
                                               and not value.is_integer()):
                    raise ValueError(value)
                value = int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise CostModelError(f"{model}: parameter {self.name!r} must be a "
                                 f"{self.type.__name__}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise CostModelError(f"{model}: parameter {self.name!r} must be one of "
                                 f"{', '.join(map(str, self.choices))}; got {value!r}")
        return value


CACHE_PARAM = Param("cache_dir", AUTO, "where built tables are cached: 'auto' = "
                    "$HAQ_CACHE_DIR/cost or ~/.cache/haq/cost, None = no cache; only models "
                    "that are slow to build (BitFusion) use it", str, optional=True)


def default_cache_dir() -> Path:
    root = os.environ.get("HAQ_CACHE_DIR")
    return Path(root) / "cost" if root else Path.home() / ".cache" / "haq" / "cost"


class CostModel(ABC):
    """Turns layer specs into a CostTable. Subclasses declare ``PARAMS`` and ``build``.

    Instances come from ``haq.cost.get(name, **params)``, which applies the registered preset
    (e.g. ``bismo-edge`` vs ``bismo-cloud``) and then the caller's overrides.

    Attributes:
        name: the registered name this instance was created under.
        params: every parameter value (preset merged with overrides), ``cache_dir`` excluded.
    """

    PARAMS: ClassVar[tuple[Param, ...]] = ()
    VERSION: ClassVar[str] = "1"
    CACHEABLE: ClassVar[bool] = False

    def __init__(self, name: str, **params: Any) -> None:
        self.name = name
        spec = {p.name: p for p in (*self.PARAMS, CACHE_PARAM)}
        unknown = sorted(set(params) - set(spec))
        if unknown:
            raise CostModelError(
                f"{name} has no parameter(s) {', '.join(unknown)}; it accepts "
                f"{', '.join(spec)} (`haq cost list` shows defaults)")
        values = {p.name: p.coerce(params.get(p.name, p.default), name) for p in spec.values()}
        cache = values.pop("cache_dir")
        self.cache_dir: Path | None = (None if cache is None
                                       else default_cache_dir() if cache == AUTO else Path(cache))
        self.params: dict[str, Any] = values
        self.validate()

    def validate(self) -> None:  # noqa: B027 - optional hook, most models need no extra checks
        """Check parameter combinations; raise ``CostModelError`` saying how to fix them."""

    @abstractmethod
    def build(self, specs: Sequence[LayerSpec]) -> CostTable:
        """Compute the table (no caching); ``table`` wraps this."""

    def source(self) -> dict[str, Any]:
        return {"model": self.name, "class": type(self).__name__, "version": self.VERSION,
                "params": dict(self.params)}

    def cache_key(self, specs: Sequence[LayerSpec]) -> str:
        """Hash of the specs, the parameters and the model version."""
        doc = {"source": self.source(), "specs": [s.to_dict() for s in specs]}
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def table(self, specs: Sequence[LayerSpec]) -> CostTable:
        """The cost table for ``specs``, from the disk cache when this model caches.

        Raises:
            CostModelError: empty specs, or a layer this model cannot price.
        """
        specs = list(specs)
        if not specs:
            raise CostModelError("no layers to price: the spec list is empty")
        path = None
        if self.CACHEABLE and self.cache_dir is not None:
            path = self.cache_dir / f"{self.name}-{self.cache_key(specs)}.json"
            if path.is_file():
                try:
                    cached = CostTable.load(path)
                    if cached.layer_names == [s.name for s in specs]:
                        return cached
                except HaqError:
                    pass  # a damaged cache entry is rebuilt and overwritten below
        table = self.build(specs)
        if path is not None:
            try:
                table.save(path)
            except OSError as err:
                warnings.warn(f"could not cache the {self.name} cost table in {path.parent}: "
                              f"{err}; pass cache_dir=None to skip caching", stacklevel=2)
        return table


@dataclass(frozen=True)
class _Entry:
    cls: type[CostModel]
    preset: dict[str, Any]
    description: str


def _load_builtins() -> None:
    from haq.cost import _proxies, _user, bismo, bitfusion  # noqa: F401 - registers models


COST_MODELS: Registry[_Entry] = Registry("cost model", CostModelError, _load_builtins)


def register_cost_model(name: str, *, description: str = "", **preset: Any
                        ) -> Callable[[type[CostModel]], type[CostModel]]:
    """Class decorator: make ``cls`` available as ``haq.cost.get(name)``.

    Stack it to register several presets of one class, e.g. edge and cloud parameters.

    Args:
        name: registry name (``bismo-edge``).
        description: one line for ``haq cost list``.
        **preset: parameter defaults for this name; callers may still override them.
    """

    def decorate(cls: type[CostModel]) -> type[CostModel]:
        known = {p.name for p in cls.PARAMS}
        bad = sorted(set(preset) - known)
        if bad:
            raise CostModelError(f"preset {name!r} sets unknown parameter(s) {bad} of "
                                 f"{cls.__name__}")
        COST_MODELS.add(name, _Entry(cls, dict(preset),
                                  description or (cls.__doc__ or "").split("\n")[0]))
        return cls

    return decorate


def available() -> list[str]:
    """Names of every registered cost model."""
    return COST_MODELS.names()


def get(name: str, **params: Any) -> CostModel:
    """Instantiate a registered cost model with its preset and the given overrides.

    Raises:
        CostModelError: unknown name or parameter, or an invalid parameter value.
    """
    entry = COST_MODELS.get(name)
    return entry.cls(name, **{**entry.preset, **params})


def describe(name: str) -> dict[str, Any]:
    """Description and parameters (name, default under this preset, help) of one model."""
    entry = COST_MODELS.get(name)
    params = [{"name": p.name, "default": entry.preset.get(p.name, p.default),
               "type": p.type.__name__, "help": p.help} for p in (*entry.cls.PARAMS, CACHE_PARAM)]
    return {"name": name, "description": entry.description, "params": params}
