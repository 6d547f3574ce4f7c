"""Configuration: ``conf/default.yaml`` overridden by ``--conf FILE`` and ``--set key=value``.

A :class:`Conf` is a nested dict with dotted access (``conf.get("paths.raw")``). Values given
with ``--set`` are parsed as YAML scalars, so ``--set catalog.partition_order=3`` is an int and
``--set sky.streams=off`` is the string ``"off"`` (YAML 1.1 booleans are not used for ``off``).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

__all__ = ["Conf", "load_conf", "settings_from", "REPO_ROOT", "DEFAULT_CONF"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# a checkout: conf/ beside lib/; an installed wheel: the copy shipped as gaialake/conf/
DEFAULT_CONF = next((p for p in (REPO_ROOT / "conf" / "default.yaml",
                                 Path(__file__).resolve().parent / "conf" / "default.yaml")
                     if p.exists()), REPO_ROOT / "conf" / "default.yaml")


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's on/off/yes/no booleans (``streams: off`` stays a string)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _parse_scalar(text: str) -> Any:
    return yaml.load(text, Loader=_Loader) if text != "" else ""


def _merge(base: dict, over: Mapping) -> dict:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


class Conf(dict):
    """Nested configuration with dotted-key access."""

    def get(self, key: str, default: Any = KeyError) -> Any:  # type: ignore[override]
        """The value at dotted ``key``; ``default`` when absent, or KeyError naming the
        missing part when no default is given."""
        node: Any = self
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if default is KeyError:
                    raise KeyError(f"conf has no key {key!r} (missing {part!r})")
                return default
            node = node[part]
        return node

    def set(self, key: str, value: Any) -> None:
        """Set the value at dotted ``key``, creating sections on the way."""
        parts = key.split(".")
        node: dict = self
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise KeyError(f"cannot set {key!r}: {part!r} is not a section")
        node[parts[-1]] = value

    def with_overrides(self, sets: Iterable[str]) -> "Conf":
        """A copy with ``key=value`` overrides applied."""
        out = Conf(copy.deepcopy(dict(self)))
        for item in sets:
            if "=" not in item:
                raise ValueError(f"--set expects key=value, got {item!r}")
            key, text = item.split("=", 1)
            out.set(key.strip(), _parse_scalar(text.strip()))
        return out

    def path(self, key: str) -> str:
        """A path from conf: URIs as they are, relative local paths against the repo root."""
        value = str(self.get(key))
        if "://" in value or value.startswith("dbfs:"):
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (REPO_ROOT / p).resolve())

    def report_path(self, key: str) -> str:
        """A figures/report folder from conf: relative values are taken under ``paths.report``."""
        value = str(self.get(key))
        if "://" in value or value.startswith("dbfs:") or Path(value).is_absolute():
            return value
        return f"{self.path('paths.report').rstrip('/')}/{value}"

    def table_path(self, table: str) -> str:
        """Location of a Delta table: ``<paths.warehouse>/<table>``."""
        return f"{self.path('paths.warehouse').rstrip('/')}/{table}"

    def seed_for(self, *parts: Any) -> int:
        """A 63-bit seed derived from ``conf.seed`` and the given parts (stable across runs)."""
        text = json.dumps([self.get("seed"), *map(str, parts)])
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1

    def to_yaml(self) -> str:
        """The configuration as YAML text."""
        return yaml.safe_dump(dict(self), sort_keys=False)


def load_conf(conf_file: str | Path | None = None, sets: Iterable[str] = ()) -> Conf:
    """``conf/default.yaml``, then ``conf_file`` merged over it, then ``--set`` overrides."""
    data = yaml.load(DEFAULT_CONF.read_text(), Loader=_Loader) or {}
    if conf_file is not None:
        path = Path(conf_file)
        if not path.exists():
            raise FileNotFoundError(f"--conf {conf_file}: no such file")
        _merge(data, yaml.load(path.read_text(), Loader=_Loader) or {})
    return Conf(data).with_overrides(sets)


S = TypeVar("S")


def settings_from(cls: type[S], section: Mapping[str, Any] | None, where: str, *,
                  base: S | None = None, strict: bool = True, **given: Any) -> S:
    """A settings dataclass from the conf section ``where`` (its dict ``section``).

    Each field takes the section's value, converted to the type of the field's value in
    ``base`` (default: the class defaults); a missing or null key keeps that value; ``given``
    wins over both. With ``strict``, a key of the section that is no field fails with
    ``where.key`` and the known keys named (a typo must not pass silently).
    """
    base = base if base is not None else cls()
    section = dict(section or {})
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(section) - set(names))
    if strict and unknown:
        raise KeyError(f"conf {where}.{unknown[0]}: unknown key; known keys: {names}")
    values: dict[str, Any] = {}
    for name in names:
        value = section.get(name)
        if value is None:
            continue
        current = getattr(base, name)
        try:
            values[name] = value if current is None else type(current)(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"conf {where}.{name}: {value!r} is not a "
                             f"{type(current).__name__}") from err
    values.update(given)
    return dataclasses.replace(base, **values)

