"""Reading and writing CostTables as JSON or CSV (one record per layer and bit pair).

Both formats hold the same records: ``layer, w_bits, a_bits, <one value per metric>``, where a
float operand is written ``float`` (CSV) or ``null`` (JSON). Every layer needs all 64 integer
pairs; float entries are optional (absent = the model cannot price them). Units go in the JSON
``units`` object or, in CSV, in a ``# units: latency=ms, energy=nJ`` comment line; values in
another unit of the same kind (us, mJ, MB, ...) are converted to the canonical unit on load.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from haq.cost._table import CostTable
from haq.cost._units import METRIC_UNITS, canonical_unit, convert
from haq.errors import ConfigError, CostModelError
from haq.policy import FLOAT_INDEX, GRID_SIZE, MAX_BITS, bits_index, index_bits
from haq.runs import atomic_write_text

FORMAT_NAME = "haq-cost-table"
FORMAT_VERSION = 1
_KEYS = ("layer", "w_bits", "a_bits")


def _records(table: CostTable) -> list[dict[str, Any]]:
    rows = []
    for li, name in enumerate(table.layer_names):
        for wi in range(GRID_SIZE):
            for ai in range(GRID_SIZE):
                vals = {m: table.values[m][li, wi, ai] for m in table.metrics}
                if all(math.isnan(v) for v in vals.values()):
                    continue
                row: dict[str, Any] = {"layer": name, "w_bits": index_bits(wi),
                                       "a_bits": index_bits(ai)}
                row.update({m: (None if math.isnan(v) else float(v)) for m, v in vals.items()})
                rows.append(row)
    return rows


def save_table(table: CostTable, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "units": table.units,
               "source": table.source, "layers": table.layer_names, "entries": _records(table)}
        atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    elif suffix == ".csv":
        buf = io.StringIO()
        buf.write(f"# {FORMAT_NAME} v{FORMAT_VERSION}\n")
        buf.write("# units: " + ", ".join(f"{m}={u}" for m, u in table.units.items()) + "\n")
        buf.write("# source: " + json.dumps(table.source, sort_keys=True) + "\n")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*_KEYS, *table.metrics])
        for row in _records(table):
            writer.writerow([row["layer"], row["w_bits"] or "float", row["a_bits"] or "float",
                             *("" if row[m] is None else repr(row[m]) for m in table.metrics)])
        atomic_write_text(path, buf.getvalue())
    else:
        raise CostModelError(f"cannot write a cost table to {path.name!r}: use a .json or .csv "
                             "file name")


def _parse_bits(value: Any, where: str) -> int:
    """Array index of a bits cell: 1-8, or null/'float'/'' for a float operand."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "float")):
        return FLOAT_INDEX
    try:
        bits = int(str(value).strip())
    except ValueError:
        bits = -1
    if not 1 <= bits <= MAX_BITS:
        raise CostModelError(f"{where}: bits must be 1-{MAX_BITS} or 'float', got {value!r}")
    return bits_index(bits)


def _parse_value(value: Any, where: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise CostModelError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(out) or out < 0:
        raise CostModelError(f"{where}: cost {value!r} must be a finite number >= 0")
    return out


def _resolve_units(metrics: list[str], declared: dict[str, str], path: Path
                   ) -> tuple[dict[str, str], dict[str, float]]:
    """Canonical unit per metric and the factor that converts declared values into it."""
    units, factors = {}, {}
    for m in metrics:
        unit = declared.get(m) or METRIC_UNITS.get(m)
        if not unit:
            raise CostModelError(f"{path}: metric {m!r} has no unit; declare it (JSON \"units\" "
                                 f"or CSV '# units: {m}=...')")
        target = METRIC_UNITS.get(m) or canonical_unit(unit) or unit
        try:
            factors[m] = convert(1.0, unit, target)
        except ConfigError as err:
            raise CostModelError(f"{path}: metric {m!r}: {err}") from None
        units[m] = target
    return units, factors


def records_to_table(rows: list[dict[str, Any]], metrics: list[str], declared: dict[str, str],
                     source: dict[str, Any], path: Path,
                     layer_order: list[str] | None = None) -> CostTable:
    """Build and validate a table from records; every layer needs all 64 integer pairs."""
    if not metrics:
        raise CostModelError(f"{path}: no metric columns; expected layer, w_bits, a_bits and at "
                             f"least one of {', '.join(METRIC_UNITS)}")
    unknown = sorted(set(declared) - set(metrics))
    if unknown:
        raise CostModelError(f"{path}: units are declared for {', '.join(unknown)}, which the "
                             f"table has no values for (metrics: {', '.join(metrics)}); fix the "
                             "spelling or drop it")
    units, factors = _resolve_units(metrics, declared, path)
    names = list(layer_order or [])
    for row in rows:
        if row.get("layer") in (None, ""):
            raise CostModelError(f"{path}: every entry needs a layer name")
        if str(row["layer"]) not in names:
            names.append(str(row["layer"]))
    index = {n: i for i, n in enumerate(names)}
    values = {m: np.full((len(names), GRID_SIZE, GRID_SIZE), np.nan) for m in metrics}
    seen = np.zeros((len(names), GRID_SIZE, GRID_SIZE), dtype=bool)
    for k, row in enumerate(rows):
        where = f"{path} entry {k + 1} (layer {row['layer']!r})"
        li = index[str(row["layer"])]
        wi, ai = _parse_bits(row.get("w_bits"), where), _parse_bits(row.get("a_bits"), where)
        if seen[li, wi, ai]:
            raise CostModelError(f"{where}: duplicate entry for w_bits={row.get('w_bits')}, "
                                 f"a_bits={row.get('a_bits')}")
        seen[li, wi, ai] = True
        for m in metrics:
            values[m][li, wi, ai] = _parse_value(row.get(m), f"{where} {m}") * factors[m]
    for m in metrics:
        holes = np.argwhere(np.isnan(values[m][:, :MAX_BITS, :MAX_BITS]))
        if len(holes):
            li, wi, ai = holes[0]
            raise CostModelError(
                f"{path}: {len(holes)} missing {m} entr{'y' if len(holes) == 1 else 'ies'}, "
                f"first: layer {names[li]!r} w_bits={wi + 1} a_bits={ai + 1}; every layer needs "
                f"all {MAX_BITS * MAX_BITS} pairs of w_bits and a_bits 1-{MAX_BITS}")
    return CostTable(names, values, units, source)


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CostModelError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); "
                             "save the table as UTF-8") from None


def _declared_units(comment: str, path: Path) -> dict[str, str]:
    """``units: latency=ms, energy=nJ`` -> {metric: unit}; anything else is an error, since a
    units line read wrongly would silently price every value in the default unit."""
    head, colon, body = comment.partition(":")
    parts = [p.strip() for p in body.split(",")]
    pairs = [p.partition("=") for p in parts]
    if head != "units" or not colon or not all(k.strip() and eq and u.strip()
                                               for k, eq, u in pairs):
        raise CostModelError(f"{path}: cannot read the units line {('# ' + comment)!r}; write it "
                             "exactly as '# units: latency=ms, energy=nJ' (lower-case 'units', "
                             "a colon, metric=unit pairs separated by commas)")
    return {k.strip(): u.strip() for k, _, u in pairs}


def _read_json(path: Path) -> CostTable:
    try:
        doc = json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise CostModelError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise CostModelError(f"{path}: not a haq cost table (expected \"format\": "
                             f"\"{FORMAT_NAME}\"; see docs/cost-models.md)")
    if doc.get("version") != FORMAT_VERSION:
        raise CostModelError(f"{path}: cost table version {doc.get('version')!r} is not "
                             f"supported; this haq reads version {FORMAT_VERSION}")
    rows = doc.get("entries")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise CostModelError(f"{path}: \"entries\" must be a list of objects "
                             "{layer, w_bits, a_bits, <metric>: value}")
    metrics = list(dict.fromkeys(k for r in rows for k in r if k not in _KEYS))
    return records_to_table(rows, metrics, dict(doc.get("units") or {}),
                            dict(doc.get("source") or {}), path, doc.get("layers"))


def _read_csv(path: Path) -> CostTable:
    declared: dict[str, str] = {}
    source: dict[str, Any] = {}
    body = []
    for line in _text(path).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment = stripped.lstrip("#").strip()
            if comment.lower().startswith("unit"):
                if declared:
                    raise CostModelError(f"{path}: more than one units line; declare every "
                                         "metric's unit on one '# units: ...' line")
                declared = _declared_units(comment, path)
            elif comment.startswith("source:"):
                try:
                    source = json.loads(comment[len("source:"):])
                except json.JSONDecodeError:
                    source = {"note": comment[len("source:"):].strip()}
        elif stripped:
            body.append(line)
    reader = csv.DictReader(body)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if header[:3] != list(_KEYS):
        raise CostModelError(f"{path}: CSV header must start with layer,w_bits,a_bits; got "
                             f"{','.join(header[:3]) or 'nothing'}")
    rows = [{k.strip(): v for k, v in row.items()} for row in reader]
    return records_to_table(rows, header[3:], declared, source, path)


def load_table(path: Path) -> CostTable:
    if not path.is_file():
        raise CostModelError(f"cost table file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise CostModelError(f"cannot read a cost table from {path.name!r}: use .json or .csv "
                         "(or .npy for HAQ's released [layers, 8, 8] cycle tables via the "
                         "'table' cost model)")
