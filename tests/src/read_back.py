# Reads Parquet datasets back for the end-to-end tests with pyarrow alone: none of pipe's code
# takes part, so a test compares the simulator's ground truth with what an independent reader
# sees. Driven by `read_back.rs`, which documents the output; run as `python -c <this> SPEC`.
#
# SPEC (argv[1]) is JSON: {"paths": [...], "columns": null | [...], "without": [...],
# "allow_missing": bool}. Prints one JSON array, one table per path:
# {"path", "files", "schema": [[name, type, nullable]], "schema_text", "rows"}.
import datetime
import json
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
US = datetime.timedelta(microseconds=1)


def fail(message):
    sys.exit("read_back: " + message)


def type_name(ty):
    # pyarrow decorates map types with their entry field names; name the logical type only.
    if pa.types.is_map(ty):
        return "map<%s, %s>" % (type_name(ty.key_type), type_name(ty.item_type))
    return str(ty)


def check_timestamp(ty, where):
    # docs/design.md §3: every timestamp is microseconds, UTC. Integers of another unit would
    # compare wrongly with the truth's microseconds, so refuse them here.
    if ty.unit != "us" or ty.tz != "UTC":
        fail("%s: %s is not timestamp[us, tz=UTC]" % (where, ty))


def is_plain(ty):
    return not (pa.types.is_timestamp(ty) or pa.types.is_nested(ty) or pa.types.is_binary(ty)
                or pa.types.is_large_binary(ty) or pa.types.is_fixed_size_binary(ty))


def canon(ty, v, where):
    """One value in the canonical encoding (see read_back.rs)."""
    if v is None:
        return None
    if pa.types.is_timestamp(ty):
        check_timestamp(ty, where)
        return (v - EPOCH) // US
    if pa.types.is_map(ty):
        pairs = [(canon(ty.key_type, k, where), canon(ty.item_type, x, where)) for k, x in v]
        obj = dict(pairs)
        if len(obj) != len(pairs):
            fail("%s: a map repeats a key: %r" % (where, pairs))
        return obj
    if pa.types.is_list(ty) or pa.types.is_large_list(ty) or pa.types.is_fixed_size_list(ty):
        return [canon(ty.value_type, x, where) for x in v]
    if pa.types.is_struct(ty):
        return {f.name: canon(f.type, v[f.name], where) for f in ty}
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def column_values(col, name):
    ty = col.type
    if pa.types.is_timestamp(ty):
        # Top-level timestamps as Arrow integers: exact, and fast on large tables.
        check_timestamp(ty, name)
        return col.cast(pa.int64()).to_pylist()
    values = col.to_pylist()
    if is_plain(ty):
        return values
    return [canon(ty, v, name) for v in values]


def sort_key(row):
    # Column by column, in the row's column order; None first, then numbers, strings, and
    # anything nested by its canonical text.
    key = []
    for v in row.values():
        if v is None:
            key.append((0, 0))
        elif isinstance(v, (bool, int, float)):
            key.append((1, v))
        elif isinstance(v, str):
            key.append((2, v))
        else:
            key.append((3, json.dumps(v, sort_keys=True)))
    return key


def read(path, columns, without, allow_missing):
    d = ds.dataset(path, format="parquet", partitioning="hive") if os.path.isdir(path) else None
    if d is None or not d.files:
        if not allow_missing:
            fail("no Parquet file under %s" % path)
        return {"path": path, "files": 0, "schema": [], "schema_text": "", "rows": []}
    t = d.to_table(columns=columns)
    if without:
        t = t.drop_columns(without)
    names = t.column_names
    values = [column_values(t.column(n), n) for n in names]
    rows = [dict(zip(names, vals)) for vals in zip(*values)] if names else [{} for _ in range(t.num_rows)]
    rows.sort(key=sort_key)
    return {
        "path": path,
        "files": len(d.files),
        "schema": [[f.name, type_name(f.type), f.nullable] for f in d.schema],
        "schema_text": str(d.schema.remove_metadata()),
        "rows": rows,
    }


spec = json.loads(sys.argv[1])
print(json.dumps([read(p, spec["columns"], spec["without"], spec["allow_missing"]) for p in spec["paths"]]))
