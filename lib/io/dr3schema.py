"""The Gaia DR3 ``gaia_source`` schema and the ECSV header of ESA's bulk files.

ESA publishes ``GaiaSource_AAAAAA-BBBBBB.csv.gz``: gzip, ECSV header lines starting with ``#``
(YAML: ``datatype`` lists each column's name, unit, datatype and description), a CSV header row,
then data. Nulls are the literal ``null`` (some mirrors write empty fields); booleans are
``True``/``False``; ``designation`` is a quoted string with spaces (``"Gaia DR3 4295806720"``).

The ingest job reads the columns from each file's own header (:func:`read_ecsv_header`) and
checks them against the table's (:func:`check_header`); the DR3 list below (:data:`DR3_COLUMNS`,
all 152 columns in file order) is the table's columns in a fresh warehouse, what the synthetic
sky writes and what tests compare against.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources
from typing import IO, Iterable, Sequence

import pyarrow as pa
import yaml

__all__ = [
    "Column", "DR3_COLUMNS", "REQUIRED_COLUMNS", "EcsvHeader", "EcsvError",
    "read_ecsv_header", "write_ecsv_header", "arrow_schema", "arrow_type", "spark_type",
    "NULL_VALUES", "TRUE_VALUES", "FALSE_VALUES", "FINITE_COLUMNS", "RESERVED_COLUMNS",
    "HeaderCheck", "check_header", "datatype_of_spark", "same_type",
]

NULL_VALUES = ["null", ""]
TRUE_VALUES = ["True", "true"]
FALSE_VALUES = ["False", "false"]

_ARROW = {
    "int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(), "int8": pa.int8(),
    "uint8": pa.uint8(), "float64": pa.float64(), "float32": pa.float32(), "bool": pa.bool_(),
    "string": pa.string(),
}
_SPARK = {
    "int64": "long", "int32": "int", "int16": "short", "int8": "byte", "uint8": "short",
    "float64": "double", "float32": "float", "bool": "boolean", "string": "string",
}


@dataclass(frozen=True)
class Column:
    """One catalog column: name, ECSV datatype (int64, float32, bool, string, ...) and unit."""
    name: str
    datatype: str
    unit: str | None = None
    description: str | None = None


def _load_dr3() -> tuple[Column, ...]:
    text = resources.files("gaialake").joinpath("resources/gaia_source_dr3.txt").read_text()
    cols = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, dtype, unit = line.split()
        cols.append(Column(name, dtype, None if unit == "-" else unit))
    return tuple(cols)


DR3_COLUMNS: tuple[Column, ...] = _load_dr3()

#: Columns every science job needs; a file whose header lacks one is rejected whole.
REQUIRED_COLUMNS = ("source_id", "ra", "dec", "parallax", "pmra", "pmdec", "phot_g_mean_mag")
#: Columns whose non-null values must be finite: a row with NaN or +-inf in one is quarantined.
FINITE_COLUMNS = ("ra", "dec", "parallax", "pmra", "pmdec", "phot_g_mean_mag")
#: Names ingest adds to staged rows and ``gaia_source``; a file may not declare them.
RESERVED_COLUMNS = ("hpx29", "source_file", "line_number", "reason", "raw_line", "hpx", "run_id")


class EcsvError(ValueError):
    """A bulk file whose header cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class EcsvHeader:
    """Parsed ECSV header: the columns and the number of lines before the first data row."""
    columns: tuple[Column, ...]
    delimiter: str
    header_lines: int  # '#' lines plus the CSV column-name row

    @property
    def names(self) -> list[str]:
        """The column names in file order."""
        return [c.name for c in self.columns]


def read_ecsv_header(stream: IO[bytes], source: str = "<stream>") -> EcsvHeader:
    """Read the ``#`` header and the column-name row of an ECSV stream (left after them).

    Raises :class:`EcsvError` naming ``source`` and the line when the header is missing,
    is not valid YAML, or disagrees with the CSV column-name row.
    """
    comment: list[str] = []
    line_no = 0
    while True:
        raw = stream.readline()
        line_no += 1
        if not raw:
            raise EcsvError(f"{source}: ended at line {line_no} before the CSV header row")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line.startswith("#"):
            break
        comment.append(line[2:] if line.startswith("# ") else line[1:])
    if not comment or not comment[0].startswith("%ECSV"):
        raise EcsvError(f"{source}: line 1 is not an ECSV header ('# %ECSV 1.0'): got "
                        f"{(comment[0] if comment else line)[:60]!r}")
    try:
        meta = yaml.load("\n".join(comment[1:]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise EcsvError(f"{source}: ECSV header is not valid YAML: {err}") from None
    if not isinstance(meta, dict) or "datatype" not in meta:
        raise EcsvError(f"{source}: ECSV header has no 'datatype' list")
    cols = []
    for i, entry in enumerate(meta["datatype"]):
        dtype = entry.get("datatype", "string")
        if dtype not in _ARROW:
            raise EcsvError(f"{source}: column {entry.get('name')!r} has unsupported datatype {dtype!r}")
        cols.append(Column(entry["name"], dtype, entry.get("unit"), entry.get("description")))
    delimiter = meta.get("delimiter", " ")
    names = [n.strip().strip('"') for n in line.split(delimiter)]
    if names != [c.name for c in cols]:
        missing = [c.name for c in cols if c.name not in names][:5]
        raise EcsvError(f"{source}: line {line_no}: CSV header row disagrees with the ECSV "
                        f"datatype list ({len(names)} vs {len(cols)} columns; e.g. {missing})")
    return EcsvHeader(tuple(cols), delimiter, line_no)


def write_ecsv_header(columns: Sequence[Column], out: IO[str]) -> None:
    """Write an ESA-style ECSV header (comment block and CSV column-name row)."""
    out.write("# %ECSV 1.0\n# ---\n# delimiter: ','\n# datatype:\n")
    for c in columns:
        fields = [f"name: {c.name}"]
        if c.unit:
            fields.append(f"unit: {c.unit!r}" if "(" in c.unit else f"unit: {c.unit}")
        fields.append(f"datatype: {c.datatype}")
        if c.description:
            fields.append(f"description: {yaml.safe_dump(c.description, width=10**6).strip()}")
        out.write("# - {" + ", ".join(fields) + "}\n")
    out.write("# meta: !!omap\n# - {source: gaialake}\n# schema: astropy-2.0\n")
    out.write(",".join(c.name for c in columns) + "\n")


#: Spark's ``simpleString`` of a column type -> the ECSV datatype read back from a table.
_FROM_SPARK = {"bigint": "int64", "int": "int32", "smallint": "int16", "tinyint": "int8",
               "double": "float64", "float": "float32", "boolean": "bool", "string": "string"}


def datatype_of_spark(simple: str) -> str:
    """The ECSV datatype of a Spark column type (``DataType.simpleString()``: bigint, double...)."""
    if simple not in _FROM_SPARK:
        raise ValueError(f"Spark type {simple!r} has no bulk-file datatype ({sorted(_FROM_SPARK)})")
    return _FROM_SPARK[simple]


def same_type(a: str, b: str) -> bool:
    """Whether two ECSV datatypes are stored as the same table type (uint8 is stored as int16)."""
    return _SPARK[a] == _SPARK[b]


@dataclass(frozen=True)
class HeaderCheck:
    """A file's header against the table's columns: ``error`` (None: the file can be ingested),
    the file's columns the table lacks (``extra``) and the table's columns the file lacks
    (``missing``, null-filled)."""
    error: str | None = None
    extra: tuple[Column, ...] = ()
    missing: tuple[str, ...] = ()

    def notes(self) -> str | None:
        """What ingesting the file changes or fills, for ``ingest_log`` (None: nothing)."""
        parts = []
        if self.extra:
            parts.append("added columns: " + ", ".join(c.name for c in self.extra))
        if self.missing:
            shown = ", ".join(self.missing[:10])
            more = f" and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
            parts.append(f"null-filled missing columns: {shown}{more}")
        return "; ".join(parts) or None


def check_header(source: str, columns: Sequence[Column], reference: Sequence[Column],
                 extra_columns: str = "evolve", missing_columns: str = "null",
                 table: str = "gaia_source") -> HeaderCheck:
    """Check a file's header ``columns`` against the table's ``reference`` columns.

    The file fails (``error`` names the file and the columns) when it lacks a column of
    :data:`REQUIRED_COLUMNS`, declares a column with another type than the table's, declares a
    reserved name, or (by policy) has columns the table lacks (``extra_columns="refuse"``) or
    lacks optional columns of the table (``missing_columns="refuse"``). Otherwise its extra
    columns are to be added to the table and its missing ones null-filled.
    """
    if extra_columns not in ("evolve", "refuse"):
        raise ValueError(f"ingest.extra_columns={extra_columns!r}: expected evolve or refuse")
    if missing_columns not in ("null", "refuse"):
        raise ValueError(f"ingest.missing_columns={missing_columns!r}: expected null or refuse")
    names = {c.name for c in columns}
    ref = {c.name: c for c in reference}
    lacking = [c for c in REQUIRED_COLUMNS if c not in names]
    if lacking:
        return HeaderCheck(f"{source}: header lacks required columns {lacking}")
    reserved = sorted(names & set(RESERVED_COLUMNS))
    if reserved:
        return HeaderCheck(f"{source}: columns {reserved} are reserved for ingest bookkeeping")
    conflicts = [f"column {c.name}: file declares {c.datatype}, {table} has {ref[c.name].datatype}"
                 for c in columns if c.name in ref and not same_type(c.datatype, ref[c.name].datatype)]
    if conflicts:
        return HeaderCheck(f"{source}: type conflict with {table}: " + "; ".join(conflicts[:5])
                           + (f" (and {len(conflicts) - 5} more)" if len(conflicts) > 5 else ""))
    extra = tuple(c for c in columns if c.name not in ref)
    if extra and extra_columns == "refuse":
        return HeaderCheck(f"{source}: columns {[c.name for c in extra]} are not in {table} "
                           f"(ingest.extra_columns=refuse; evolve adds them)")
    missing = tuple(c.name for c in reference if c.name not in names)
    if missing and missing_columns == "refuse":
        return HeaderCheck(f"{source}: lacks columns {list(missing[:10])} of {table} "
                           f"(ingest.missing_columns=refuse; null fills them)")
    return HeaderCheck(None, extra, missing)


def arrow_type(datatype: str) -> pa.DataType:
    """Arrow type of an ECSV datatype."""
    return _ARROW[datatype]


def spark_type(datatype: str) -> str:
    """Spark SQL type name for an ECSV datatype."""
    return _SPARK[datatype]


def arrow_schema(columns: Iterable[Column]) -> pa.Schema:
    """Arrow schema of the columns, in order."""
    return pa.schema([pa.field(c.name, _ARROW[c.datatype]) for c in columns])


def header_text(columns: Sequence[Column]) -> str:
    """The ECSV header (``#`` lines) of a file with these columns, as text."""
    buf = io.StringIO()
    write_ecsv_header(columns, buf)
    return buf.getvalue()
