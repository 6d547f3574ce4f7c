"""Configuration: ``conf/default.yaml`` overridden by ``--conf FILE`` and ``--set key=value``.

A :class:`Conf` is a nested dict with dotted access (``conf.get("paths.raw")``). Values given
with ``--set`` are parsed as YAML scalars, so ``--set catalog.partition_order=3`` is an int and
``--set sky.streams=off`` is the string ``"off"`` (YAML 1.1 booleans are not used for ``off``)
and ``--set sky.n_stars=2e6`` is a float.

:func:`load_conf` checks the result before any Spark starts (:func:`check_conf`): the key tree
of ``conf/default.yaml`` is the schema. A key it does not hold fails with the nearest known key,
a value of another type than the default's fails naming the key and the type, and the values of
:data:`RANGES` and :data:`CHOICES` (and every ``*_fraction``/``*_frac`` key) are range-checked.
The sections of :data:`OPEN_SECTIONS` also take keys default.yaml does not list; the entries of
:data:`OVERRIDE_MAPS` (``null_sky.set``, ``accreted.side_sky``) are checked as the keys they
set. Invalid YAML fails with the file, line and column. Every failure is a :class:`ConfError`.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import yaml

__all__ = ["Conf", "ConfError", "load_conf", "check_conf", "settings_from", "REPO_ROOT",
           "DEFAULT_CONF", "OPEN_SECTIONS", "OVERRIDE_MAPS", "TYPES", "RANGES", "CHOICES"]

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
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
# YAML 1.2 floats: 1e5, 1.8e9 (YAML 1.1 needs a dot and a signed exponent, else a string)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class ConfError(ValueError):
    """A conf that fails its checks; the message names the key, or the file and line."""


#: Sections whose keys default.yaml does not list in full: names the user chooses, or settings
#: handed on to a consumer that checks its own keys. Unlisted keys pass; listed ones are checked.
OPEN_SECTIONS = frozenset({
    "spark.conf",                  # any Spark conf key, given to the session builder as it is
    "streams.flow",                # flow-builder settings; which keys apply depends on the type
    "streams.train",               # TrainSettings fields (settings_from refuses unknown ones)
    "streams.cathode.classifier",  # HistGradientBoostingClassifier keyword arguments
    "streams.ranode.flow",         # R-ANODE's signal-flow settings (as streams.flow)
    "streams.ranode.train",        # TrainSettings fields (settings_from refuses unknown ones)
    "upsample.flow",               # flow shape + training keys (galaxyflow.train_settings checks)
})

#: Maps whose keys are themselves conf keys (after the prefix): each entry is checked as if it
#: were given with ``--set prefix+key=value``.
OVERRIDE_MAPS = {"null_sky.set": "", "accreted.side_sky": "sky."}

#: Keys whose value may take other types than default.yaml's value has (kinds: int, number,
#: str, bool, list, map, null). Any other key takes its default's type; a null default takes any.
TYPES: dict[str, tuple[str, ...]] = {
    "sky.n_stars": ("number",),                 # an expected count: 1.8e9 is fine
    "sky.stars_per_file": ("number",),          # expected stars per file
    "upsample.multiple": ("number",),           # mock stars per particle: any real > 0
    "bench.ingest_stars": ("number",),          # synthetic stars (an expected count)
    "sky.region": ("str", "list"),              # 'full', or a list of cones
    "sky.sample_order": ("str", "int"),         # 'auto', or a HEALPix order
    "sky.streams": ("str", "bool"),             # on | off (true | false)
    "sky.extinction": ("str", "bool"),
    "spark.master": ("str", "null"),            # null: spark-submit's --master
    "density.completeness": ("map", "null"),    # null: a complete sample
    "density.catalog.abs_mag_max": ("number", "null"),   # null: no absolute-magnitude cut
    "upsample.flow.passes": ("int", "null"),    # null: an autoregressive NSF
    "find_streams.null_candidates": ("str", "null"),   # null: the significance floor alone
    "ingest.missing_columns": ("str", "null"),  # "null" or null: null-fill
}

#: Ranges of numeric keys: (low, high, low excluded). Besides these, every key whose name ends
#: in ``fraction`` or ``_frac`` is in [0, 1], and ``patches.fiducial_deg <= patches.radius_deg``.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "patches.radius_deg": (0, 180, True),
    "patches.fiducial_deg": (0, 180, True),
    "patches.b_min_deg": (0, 90, False),
    "sky.n_stars": (0, None, True),
    "sky.stars_per_file": (0, None, True),
    "density.n_stars": (0, None, True),
    "ingest.files_per_batch": (0, None, True),
    "ingest.chunk_bytes": (0, None, True),
    "spark.shuffle_partitions": (0, None, True),
    "catalog.partition_order": (0, 12, False),
    "streams.sr_width_masyr": (0, None, True),
    "streams.sr_step_masyr": (0, None, True),
    "streams.cathode.folds": (2, None, False),
    "streams.retrainings": (1, None, False),
    "find_streams.top_n": (0, None, True),
    "upsample.multiple": (0, None, True),
    "upsample.judge.folds": (2, None, False),
    "upsample.judge.max_rows": (0, None, True),
    "export.max_rows": (0, None, True),
    "export.hats_max_rows": (0, None, True),
    "export.hats_skymap_order": (0, 10, False),
}

#: Keys with a fixed set of values.
CHOICES: dict[str, tuple[Any, ...]] = {
    "spark.mode": ("local", "cluster", "databricks"),
    "ingest.writer": ("arrow", "spark"),
    "ingest.extra_columns": ("evolve", "refuse"),
    "ingest.missing_columns": ("null", None, "refuse"),
    "sky.galaxy": ("A", "B"),
    "sky.streams": ("on", "off", True, False),
    "sky.extinction": ("on", "off", True, False),
    "streams.method": ("cathode", "anode", "ranode", "cwola"),
    "score.mode": ("new", "all"),
    "density.mock": ("slab", "plummer"),
    "density.source": ("mock", "catalog", "mock_catalog"),
    "density.feed": ("memory", "petastorm"),
    "density.estimator": ("potential", "pointwise"),
    "upsample.feed": ("auto", "memory", "petastorm"),
    "upsample.classifier": ("mlp", "hgb"),
    "upsample.judge.kind": ("hgb", "mlp"),
    "upsample.format": ("auto", "parquet", "hdf5", "gizmo", "arepo", "tipsy"),
    "find_streams.known_tracks.source": ("auto", "galstreams", "truth", "none"),
}

#: Keys that are gone, with what replaced them (a conf that still sets one fails with this).
RETIRED: dict[str, str] = {
    "sky.realistic_streams": "streams are always thinned by the field's factor (real contrast)",
}

_KIND_NAMES = {"int": "an integer", "number": "a number", "str": "a string",
               "bool": "a boolean (true or false)", "list": "a list",
               "map": "a section (key: value)", "null": "null"}
_ANY = object()   # the schema of a key whose default is null, or below an open section


def _show(value: Any) -> str:
    """A value as YAML writes it (null, true), strings quoted."""
    if value is None or isinstance(value, bool):
        return yaml.safe_dump(value).split("\n")[0]
    return repr(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return "map" if isinstance(value, Mapping) else type(value).__name__


def _known_keys(schema: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key, value in schema.items():
        out.append(f"{prefix}{key}")
        if isinstance(value, Mapping) and f"{prefix}{key}" not in OVERRIDE_MAPS:
            out.extend(_known_keys(value, f"{prefix}{key}."))
    return out


def _unknown(schema: Mapping, key: str, where: str) -> ConfError:
    if key in RETIRED:
        return ConfError(f"{where}conf key {key} is retired: {RETIRED[key]}; remove it")
    near = difflib.get_close_matches(key, _known_keys(schema), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else " (conf/default.yaml lists the known keys)"
    return ConfError(f"{where}conf key {key} is unknown{hint}")


def _lookup(schema: Mapping, key: str, where: str) -> tuple[str, Any]:
    """(the schema key, its default) of dotted ``key``; ``_ANY`` below an open section or a null
    default; keys inside an override map resolve to the key they override."""
    node: Any = schema
    parts = key.split(".")
    for i, part in enumerate(parts):
        here = ".".join(parts[:i])
        if here in OVERRIDE_MAPS:
            return _lookup(schema, OVERRIDE_MAPS[here] + ".".join(parts[i:]), where)
        if node is None or (here in OPEN_SECTIONS and part not in node):
            return key, _ANY
        if not isinstance(node, Mapping) or part not in node:
            raise _unknown(schema, key, where)
        node = node[part]
    return key, node


def _check_range(key: str, value: Any, where: str) -> None:
    if _kind(value) not in ("int", "number"):
        return
    name = key.rsplit(".", 1)[-1]
    low, high, strict = RANGES.get(key, (None, None, False))
    if name.endswith("fraction") or name.endswith("_frac"):
        low, high, strict = 0, 1, False
    if (low is not None and (value <= low if strict else value < low)) \
            or (high is not None and value > high):
        if high is None:
            rule = f"> {low}" if strict else f">= {low}"
        elif low is None:
            rule = f"<= {high}"
        else:
            rule = f"in {'(' if strict else '['}{low}, {high}]"
        raise ConfError(f"{where}conf {key}: {_show(value)} is out of range (must be {rule})")


def _check_item(schema: Mapping, key: str, value: Any, where: Callable[[str], str]) -> None:
    """Check one (dotted) key and its value against ``schema``; raise :class:`ConfError`."""
    key, default = _lookup(schema, key, where(key))
    if default is not _ANY:
        kinds = TYPES.get(key) or ((_kind(default),) if default is not None else ())
        got = _kind(value)
        if kinds and got not in kinds and not (got == "int" and "number" in kinds):
            expected = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
            quote = ' (the string "null" needs quotes)' if value is None and "str" in kinds \
                else ""
            raise ConfError(f"{where(key)}conf {key}: {_show(value)} is not {expected}{quote}")
    if key in CHOICES and value not in CHOICES[key]:
        choices = dict.fromkeys(_show(c) if c is None or isinstance(c, bool) else str(c)
                                for c in CHOICES[key])
        raise ConfError(f"{where(key)}conf {key}: {_show(value)} is not one of "
                        f"{', '.join(choices)}")
    _check_range(key, value, where(key))
    if isinstance(value, Mapping):
        if key in OVERRIDE_MAPS:
            for sub, item in value.items():
                _check_item(schema, OVERRIDE_MAPS[key] + str(sub), item,
                            lambda k, sub=sub: where(f"{key}.{sub}") + f"{key} entry {sub}: ")
        elif isinstance(default, Mapping) or default is _ANY:
            for sub, item in value.items():
                _check_item(schema, f"{key}.{sub}", item, where)


def check_conf(conf: Mapping, schema: Mapping | None = None) -> None:
    """Check every key of ``conf`` against ``schema`` (default: conf/default.yaml): known keys,
    types, :data:`CHOICES` and :data:`RANGES`; raise :class:`ConfError` naming the key."""
    schema = schema if schema is not None else _read_yaml(DEFAULT_CONF)[0]
    for key, value in conf.items():
        _check_item(schema, str(key), value, lambda k: "")
    radius = Conf(conf).get("patches.radius_deg", None)
    fiducial = Conf(conf).get("patches.fiducial_deg", None)
    if isinstance(radius, (int, float)) and isinstance(fiducial, (int, float)) \
            and fiducial > radius:
        raise ConfError(f"conf patches.fiducial_deg: {fiducial!r} is larger than "
                        f"patches.radius_deg ({radius!r}): the scored disc must lie in the patch")


def _read_yaml(path: Path, label: str | None = None) -> tuple[Any, Any]:
    """(data, node tree) of a YAML file; invalid YAML or a key given twice fails with the file
    (``label``), line and column."""
    label = label or str(path)
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        context = f" ({err.context})" if err.context else ""
        raise ConfError(f"{label}{where}: invalid YAML: {err.problem}{context}") from None
    except yaml.YAMLError as err:
        raise ConfError(f"{label}: invalid YAML: {err}") from None
    _no_duplicates(node, label)
    return data, node


def _no_duplicates(node: Any, label: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise ConfError(f"{label} line {key.start_mark.line + 1}: key "
                                    f"{key.value!r} is given twice in one section")
                seen.add(key.value)
            _no_duplicates(value, label)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _no_duplicates(item, label)


def _line_of(node: Any, key: str) -> int | None:
    """The line (1-based) of dotted ``key`` in a YAML node tree; the deepest part found."""
    line, parts = None, key.split(".")
    while parts and isinstance(node, yaml.MappingNode):
        keys = {getattr(k, "value", None): (k, v) for k, v in node.value}
        # a map of dotted keys (null_sky.set) holds "sky.n_stars" as one key: longest first
        n = next((n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in keys), 0)
        if not n:
            break
        k, node = keys[".".join(parts[:n])]
        line, parts = k.start_mark.line + 1, parts[n:]
    return line


def _parse_scalar(text: str) -> Any:
    return yaml.load(text, Loader=_Loader) if text != "" else ""


def _parse_set(item: str) -> tuple[str, Any]:
    """``key=value`` of ``--set``: the key and the value parsed as YAML."""
    if "=" not in item:
        raise ConfError(f"--set expects key=value, got {item!r}")
    key, text = item.split("=", 1)
    try:
        return key.strip(), _parse_scalar(text.strip())
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err)
        raise ConfError(f"--set {item}: invalid YAML value: {problem}") from None


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
            out.set(*_parse_set(item))
        return out

    def suffixed(self, suffix: str, paths: Iterable[str]) -> "Conf":
        """A copy whose ``paths.<key>`` of ``paths`` and ``catalog.database`` end in ``suffix``
        (dashes become underscores in the database): a run with its own files and tables."""
        if not suffix:
            raise ValueError("a suffixed conf needs a non-empty suffix: its own paths")
        out = self.with_overrides([])
        for key in paths:
            out.set(f"paths.{key}", str(self.get(f"paths.{key}")).rstrip("/") + suffix)
        out.set("catalog.database", str(self.get("catalog.database")) + suffix.replace("-", "_"))
        return out

    def fingerprint(self, keys: Iterable[str]) -> str:
        """sha256 of the values at ``keys`` (absent: null): equal fingerprints, equal settings."""
        settings = {key: self.get(key, None) for key in keys}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()
                              ).hexdigest()

    def path(self, key: str) -> str:
        """A path from conf: URIs as they are, relative local paths against the repo root;
        ``{paths.<name>}`` in the value stands for that path (``{paths.warehouse}/_metastore``)."""
        value = re.sub(r"\{(paths\.[A-Za-z_]+)\}", lambda m: self.path(m[1]).rstrip("/"),
                       str(self.get(key)))
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
    """``conf/default.yaml``, then ``conf_file`` merged over it, then ``--set`` overrides;
    each layer is checked against default.yaml's keys and types, the result as a whole by
    :func:`check_conf` (a :class:`ConfError` names the key and where it was given)."""
    schema = _read_yaml(DEFAULT_CONF)[0] or {}
    data = copy.deepcopy(schema)
    if conf_file is not None:
        path = Path(conf_file)
        if not path.exists():
            raise FileNotFoundError(f"--conf {conf_file}: no such file")
        over, node = _read_yaml(path, str(conf_file))
        over = over or {}
        if not isinstance(over, Mapping):
            raise ConfError(f"{conf_file}: expected sections (key: value), got "
                            f"{type(over).__name__}")
        for key, value in over.items():
            _check_item(schema, str(key), value,
                        lambda k: f"{conf_file} line {_line_of(node, k) or 1}: ")
        _merge(data, over)
    conf = Conf(data)
    for item in sets:
        key, value = _parse_set(item)
        _check_item(schema, key, value, lambda k, item=item: f"--set {item}: ")
        conf.set(key, value)
    check_conf(conf, schema)
    return conf


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

