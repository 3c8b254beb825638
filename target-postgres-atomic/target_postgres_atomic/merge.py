"""SQL statement builders: staged rows -> the real table. The version guard lives here only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import sql

from target_postgres_atomic.columns import Column, decoded_bytes
from target_postgres_atomic.spec import DELETED_AT, RECORD_METADATA, TABLE_VERSION, TableSpec

STAGE_COLUMNS = sql.SQL("_seq bigint, _table_version bigint, _extracted_at text, data jsonb")
COPY_COLUMNS = sql.SQL("_seq, _table_version, _extracted_at, data")
TOMBSTONES = "_sdc_target_tombstones"
METADATA_NAMES = {TABLE_VERSION, *(c.name for c in RECORD_METADATA)}

_ENVELOPE = {
    TABLE_VERSION: sql.SQL("s._table_version"),
    "_sdc_extracted_at": sql.SQL("s._extracted_at::timestamp with time zone"),
    "_sdc_received_at": sql.SQL("now()"),
    "_sdc_batched_at": sql.SQL("now()"),
    "_sdc_sequence": sql.SQL("s._seq"),
}


# PostgreSQL also reads 'now', 'epoch', 'infinity', 'NaN'... as times and numbers; Singer means
# RFC 3339 and finite JSON numbers only. A text failing its type's shape test is cast with a
# prefix that makes the cast fail, so the usual unfit-value error names the record and field.
# The tests are LIKE patterns, not regular expressions: a regex costs microseconds per value.
# RFC 3339 text has no 'n' or 'o'; every spelling of NaN and Infinity has an 'n' or 'N'.
_SHAPES = {
    "timestamp with time zone": "{t} LIKE '____-__-__%' AND {t} NOT LIKE '%n%' "
    "AND {t} NOT LIKE '%o%'",
    "date": "{t} LIKE '____-__-__'",
    "time without time zone": "{t} LIKE '__:__%' AND {t} NOT LIKE '%n%' AND {t} NOT LIKE '%o%'",
    "numeric": "{t} NOT LIKE '%n%' AND {t} NOT LIKE '%N%'",
}
CAST_FAILS = "not RFC 3339 or a finite number: "


def cast_text(column: Column, text: sql.Composable) -> sql.Composable:
    """`text` (a JSON value as text) cast to the column's type, in PostgreSQL."""
    pg_type = column.pg_type
    if pg_type == "text":
        return text
    if pg_type == "bytea" and column.encoding is not None:
        return decoded_bytes(column.encoding, text)
    shape = _SHAPES.get(pg_type.split("(")[0])
    if shape is not None:
        text = sql.SQL("CASE WHEN {shape} THEN {t} ELSE {fails} || {t} END").format(
            shape=sql.SQL(shape).format(t=text), t=text, fails=sql.Literal(CAST_FAILS)
        )
    return sql.SQL("({})::{}").format(text, sql.SQL(pg_type))


def value_expr(column: Column, typed: Staged | None = None) -> sql.Composable:
    """The column's value from a staged row `s`: its typed stage column where the row has one
    (`data` is NULL), else cast out of the raw JSON in PostgreSQL (no per-row Python)."""
    if column.source is None:
        return _ENVELOPE[column.name]
    key = sql.Literal(column.source)
    if column.pg_type == "jsonb":
        general: sql.Composable = sql.SQL("NULLIF(s.data -> {}, 'null'::jsonb)").format(key)
    else:
        general = cast_text(column, sql.SQL("(s.data ->> {})").format(key))
    if typed is None:
        return general
    stage = typed.columns[column.name]
    if not typed.mixed:
        return stage
    return sql.SQL("CASE WHEN s.data IS NULL THEN {} ELSE {} END").format(stage, general)


def _names(columns: list[str], prefix: str = "") -> sql.Composable:
    if prefix:
        return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in columns)
    return sql.SQL(", ").join(map(sql.Identifier, columns))


@dataclass(frozen=True)
class Staged:
    """How a batch sits in a stage with typed columns."""

    columns: Mapping[str, sql.Composable]
    """Table column -> its value from the typed stage columns of a staged row `s`."""
    mixed: bool
    """Some rows are staged as raw JSON only (`data` set, typed columns NULL)."""
    casts: tuple[tuple[str, str, str], ...] = ()
    """(property, column type, stage column) of values staged as JSON text, cast in the merge
    (a value its type cannot hold fails there, not in the COPY)."""


@dataclass(frozen=True)
class KeyCollations:
    """How the table compares its key columns: a merge must group keys the same way."""

    collations: Mapping[str, sql.Composable]
    """Key column -> the collation of its column (keys of non-text types: absent)."""
    exact: bool
    """A single key that PostgreSQL finds equal only when the values are equal in Python:
    integers, or text in a deterministic collation (byte-wise equality) under every unique
    index. Then staging can tell unique keys and the all-new-keys check can compare."""
    loose: frozenset[str]
    """Key columns whose equal values may differ byte-wise as text, with no one spelling to
    turn them into: a nondeterministic collation (say case-insensitive), or jsonb (whose
    numbers keep their trailing zeros)."""
    types: Mapping[str, str]
    """Key column -> its type in the table (which decides equality, whatever the schema says)."""

    def key(self, name: str, prefix: str = "") -> sql.Composable:
        """The key column (of `prefix`) in the table's collation."""
        column = sql.Identifier(prefix, name) if prefix else sql.Identifier(name)
        return _collated(column, self.collations.get(name))


def typed_rows(
    spec: TableSpec,
    source: sql.Composable,
    where: sql.Composable,
    typed: Staged | None = None,
) -> sql.Composed:
    """SELECT of the staged rows as table columns, plus their arrival order `_sdc_seq`."""
    exprs = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(value_expr(c, typed), sql.Identifier(c.name))
        for c in spec.columns
    )
    return sql.SQL("SELECT {}, s._seq AS _sdc_seq FROM {} s {}").format(exprs, source, where)


def version_guard(spec: TableSpec, stored: str, incoming: str) -> sql.Composable:
    """True when the incoming row is not older than the stored one (never older over newer)."""
    if spec.version is None:
        return sql.SQL("TRUE")
    v = spec.version
    return sql.SQL("({} IS NULL OR {} >= {})").format(
        sql.Identifier(stored, v), sql.Identifier(incoming, v), sql.Identifier(stored, v)
    )


def upsert(
    spec: TableSpec,
    rows: sql.Composable,
    keys: KeyCollations,
    *,
    hard_delete: bool,
    unique_keys: bool = False,
    new_keys: bool = False,
) -> sql.Composed:
    """Newest row per key (in the table's collation) wins in the batch, then an upsert
    guarded by version and change.

    With `unique_keys` (staging saw each key once) the batch needs no newest-per-key sort;
    with `new_keys` (no key of the batch is in the table, see `keys_are_new`) it is a plain
    insert: there is no stored version to guard.
    """
    columns = [c.name for c in spec.columns]
    data_columns = [c for c in columns if c not in METADATA_NAMES]
    order: list[sql.Composable] = [sql.SQL("{} ASC").format(keys.key(k)) for k in spec.keys]
    if spec.version is not None:
        order.append(sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(spec.version)))
    order.append(sql.SQL("_sdc_seq DESC"))
    guard = version_guard(spec, "t", "excluded")
    assignments = [
        sql.SQL("{c} = CASE WHEN {g} THEN excluded.{c} ELSE t.{c} END").format(
            c=sql.Identifier(c), g=guard
        )
        for c in columns
        if c != TABLE_VERSION
    ]
    assignments.append(
        sql.SQL("{c} = COALESCE(excluded.{c}, t.{c})").format(c=sql.Identifier(TABLE_VERSION))
    )
    changed = sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        _names(data_columns, "t"), _names(data_columns, "excluded")
    )
    joins_version = sql.SQL(
        "(excluded.{tv} IS NOT NULL AND excluded.{tv} IS DISTINCT FROM t.{tv})"
    ).format(tv=sql.Identifier(TABLE_VERSION))
    keep = (
        sql.SQL("WHERE src.{} IS NULL").format(sql.Identifier(DELETED_AT))
        if hard_delete
        else sql.SQL("")
    )
    tombstones = tombstone_table(spec) if hard_delete else None
    if tombstones is not None:
        newer = _tombstone_sql(spec, keys, tombstones, _NEWER_TOMBSTONE)
        keep += sql.SQL(" AND NOT EXISTS ({})").format(newer)
    newest = sql.SQL(
        "SELECT * FROM ({rows}) r"
        if unique_keys
        else "SELECT DISTINCT ON ({keys}) * FROM ({rows}) r ORDER BY {order}"
    ).format(
        keys=sql.SQL(", ").join(keys.key(k) for k in spec.keys),
        rows=rows,
        order=sql.SQL(", ").join(order),
    )
    statement = sql.SQL(
        "WITH src AS ({newest}), "
        "ins AS (INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM src {keep} {conflict}) "
    ).format(
        newest=newest,
        table=spec.qualified(),
        cols=_names(columns),
        keep=keep,
        conflict=sql.SQL("")
        if new_keys
        else sql.SQL(
            "ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE ({guard} AND {changed}) OR {joins}"
        ).format(
            keys=_names(list(spec.keys)),
            sets=sql.SQL(", ").join(assignments),
            guard=guard,
            changed=changed,
            joins=joins_version,
        ),
    )
    if not hard_delete:
        return statement + sql.SQL("SELECT 1")
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = {}").format(sql.Identifier(k), keys.key(k, "src")) for k in spec.keys
    )
    if tombstones is not None:
        statement += sql.SQL(", tomb AS ({}) ").format(
            _tombstone_sql(spec, keys, tombstones, _KEEP_TOMBSTONES)
        )
    return statement + sql.SQL(
        "DELETE FROM {table} AS t USING src WHERE src.{deleted} IS NOT NULL AND {match} AND {guard}"
    ).format(
        table=spec.qualified(),
        deleted=sql.Identifier(DELETED_AT),
        match=match,
        guard=version_guard(spec, "t", "src"),
    )


def keys_are_new(
    spec: TableSpec,
    stage: sql.Composable,
    key: sql.Composable,
    keys: KeyCollations,
    lowest: int | None = None,
) -> sql.Composed:
    """True when every staged key (`key`, of a row `s`) is above the table's largest key,
    compared in the key column's collation (only for `keys.exact`: in a deterministic one,
    keys above the largest differ from every stored key byte-wise). An integer key's
    `lowest` staged value, known in Python, spares the scan of the stage.

    Run under the table's lock (`connector.lock_table`): another loader of ours cannot add
    keys until this transaction ends, and each statement of READ COMMITTED sees what the
    loaders before it committed. The unique index answers max() without a scan.
    """
    (name,) = spec.keys
    least: sql.Composable = sql.SQL("(SELECT min({key}) FROM {stage} s)").format(
        key=_collated(key, keys.collations.get(name)), stage=stage
    )
    if lowest is not None:
        least = sql.Literal(lowest)
    return sql.SQL("SELECT coalesce((SELECT max({k}) FROM {table}) < {least}, true)").format(
        k=sql.Identifier(name), table=spec.qualified(), least=least
    )


def _collated(value: sql.Composable, collation: sql.Composable | None) -> sql.Composable:
    return value if collation is None else sql.SQL("{} COLLATE {}").format(value, collation)


def tombstone_table(spec: TableSpec) -> sql.Identifier | None:
    """Where hard-deleted keys keep their version, so older replays stay deleted.

    Only streams with keys and a version guard need one: without a version, arrival order
    rules and a replay is indistinguishable from a re-creation.
    """
    if not spec.keys or spec.version is None:
        return None
    return sql.Identifier(spec.schema, TOMBSTONES)


def _key_text(name: str, keys: KeyCollations) -> sql.Composable:
    """The key of `src` as a tombstone keeps it: one spelling per value of the column's type.

    A numeric column holds 1.0 and 1.00 as one key, whose text keeps the scale: trimmed, equal
    values are equal text. The other types our tables have print one spelling per value.
    """
    key = sql.SQL("src.{}").format(sql.Identifier(name))
    if keys.types.get(name) == "numeric":
        return sql.SQL("trim_scale({}::numeric)::text").format(key)
    return sql.SQL("{}::text").format(key)


def _key_array(spec: TableSpec, keys: KeyCollations) -> sql.Composable:
    return sql.SQL("ARRAY[{}]").format(
        sql.SQL(", ").join(_key_text(name, keys) for name in spec.keys)
    )


def _tombstone_of(spec: TableSpec, keys: KeyCollations) -> sql.Composable:
    """True for a tombstone `d` of the key of `src`, equal as the table's keys are equal.

    Byte-wise (the tombstones' primary key finds it) unless a key column is loose: then 'a'
    is the key 'A' in a case-insensitive collation, and jsonb 1.0 is 1.00, so those elements
    compare as values of the column's type, in its collation.
    """
    if not keys.loose:
        return sql.SQL("d.key = {}").format(_key_array(spec, keys))
    return sql.SQL(" AND ").join(
        _element_of(position, name, keys) for position, name in enumerate(spec.keys, 1)
    )


def _element_of(position: int, name: str, keys: KeyCollations) -> sql.Composable:
    element = sql.SQL("d.key[{}]").format(sql.Literal(position))
    if name not in keys.loose:
        return sql.SQL("{} = {}").format(element, _key_text(name, keys))
    pg_type = sql.SQL(keys.types[name])
    return sql.SQL("{}::{} = {}").format(
        element,
        pg_type,
        _collated(
            sql.SQL("src.{}::{}").format(sql.Identifier(name), pg_type), keys.collations.get(name)
        ),
    )


def _tombstone_sql(
    spec: TableSpec, keys: KeyCollations, tombstones: sql.Identifier, template: str
) -> sql.Composed:
    """`template` with the tombstone table, this table's name, key array, the match of a
    tombstone to `src`'s key, and the version column."""
    version_type = next(c.pg_type for c in spec.columns if c.name == spec.version)
    return sql.SQL(template).format(
        tb=tombstones,
        name=sql.Literal(spec.table),
        key=_key_array(spec, keys),
        match=_tombstone_of(spec, keys),
        v=sql.Identifier(spec.version or ""),
        type=sql.SQL(version_type),
        deleted=sql.Identifier(DELETED_AT),
    )


# The key was deleted at a version newer than the incoming row's.
_NEWER_TOMBSTONE = (
    "SELECT 1 FROM {tb} d WHERE d.table_name = {name} AND {match} AND d.version::{type} > src.{v}"
)
# Each deleted key's newest delete version (as text of the typed value).
_KEEP_TOMBSTONES = (
    "INSERT INTO {tb} AS d (table_name, key, version) "
    "SELECT {name}, {key}, src.{v}::text FROM src "
    "WHERE src.{deleted} IS NOT NULL AND src.{v} IS NOT NULL "
    "ON CONFLICT (table_name, key) DO UPDATE SET version = excluded.version, deleted_at = now() "
    "WHERE excluded.version::{type} >= d.version::{type}"
)


def append(spec: TableSpec, rows: sql.Composable) -> sql.Composed:
    columns = _names([c.name for c in spec.columns])
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ({}) r ORDER BY _sdc_seq").format(
        spec.qualified(), columns, columns, rows
    )


def retire_versions(spec: TableSpec, version: int, *, hard_delete: bool) -> sql.Composed:
    """Rows of table versions older than `version` go (or are marked deleted)."""
    older = sql.SQL("({tv} IS NULL OR {tv} < {v})").format(
        tv=sql.Identifier(TABLE_VERSION), v=sql.Literal(version)
    )
    if hard_delete:
        return sql.SQL("DELETE FROM {} WHERE {}").format(spec.qualified(), older)
    return sql.SQL("UPDATE {t} SET {d} = now() WHERE {older} AND {d} IS NULL").format(
        t=spec.qualified(), d=sql.Identifier(DELETED_AT), older=older
    )


FITS_FUNCTION = sql.SQL(
    "CREATE OR REPLACE FUNCTION pg_temp.sdc_fits(v text, cast_sql text) RETURNS boolean "
    "LANGUAGE plpgsql AS $$ BEGIN EXECUTE cast_sql USING v; RETURN true; "
    "EXCEPTION WHEN others THEN RETURN false; END $$"
)


def first_unfit(
    spec: TableSpec, stage: sql.Composable, typed: Staged | None = None
) -> sql.Composed | None:
    """The first staged row with a value its column type cannot hold: (line, field, type).

    Raw JSON rows are probed in `data`, typed rows in their stage columns of JSON text (a
    row has one or the other: the probe of the other one sees NULL, which fits).
    """
    probes = [
        _unfit_probe(
            stage,
            c.source,
            c.pg_type,
            sql.SQL("s.data ->> {}").format(sql.Literal(c.source)),
            cast_text(c, sql.SQL("$1::text")),
        )
        for c in spec.columns
        if c.source is not None and c.pg_type not in ("text", "jsonb")
    ]
    probes += [
        _unfit_probe(
            stage,
            source,
            pg_type,
            sql.SQL("convert_from(s.{}, 'UTF8')").format(sql.Identifier(column)),
            sql.SQL("NULLIF($1::text, 'null')::{}").format(sql.SQL(pg_type)),
        )
        for source, pg_type, column in (typed.casts if typed is not None else ())
    ]
    if not probes:
        return None
    return sql.SQL("SELECT * FROM ({}) p ORDER BY 1 LIMIT 1").format(
        sql.SQL(" UNION ALL ").join(probes)
    )


def _unfit_probe(
    stage: sql.Composable, source: str, pg_type: str, text: sql.Composable, cast: sql.Composable
) -> sql.Composed:
    """The first row whose `text` (of property `source`) fails `cast` (of `$1`)."""
    return sql.SQL(
        "(SELECT s._seq, {f}, {t} FROM {stage} s "
        "WHERE NOT pg_temp.sdc_fits({text}, {cast}) ORDER BY s._seq LIMIT 1)"
    ).format(
        f=sql.Literal(source),
        t=sql.Literal(pg_type),
        stage=stage,
        text=text,
        cast=sql.Literal(sql.SQL("SELECT {}").format(cast).as_string(None)),
    )


def first_null_key(spec: TableSpec, source: sql.Composable) -> sql.Composed:
    """The first staged row with no value for a key property: (line, key)."""
    probes = sql.SQL(" UNION ALL ").join(
        sql.SQL(
            "(SELECT s._seq, {k} FROM {source} s WHERE s.data IS NOT NULL "
            "AND s.data ->> {k} IS NULL "
            "ORDER BY s._seq LIMIT 1)"
        ).format(k=sql.Literal(key), source=source)
        for key in spec.keys
    )
    return sql.SQL("SELECT * FROM ({}) p ORDER BY 1 LIMIT 1").format(probes)
