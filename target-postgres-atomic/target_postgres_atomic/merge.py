"""SQL statement builders: staged rows -> the real table. The version guard lives here only."""

from __future__ import annotations

from psycopg import sql

from target_postgres_atomic.columns import Column
from target_postgres_atomic.spec import DELETED_AT, RECORD_METADATA, TABLE_VERSION, TableSpec

STAGE_COLUMNS = sql.SQL("_seq bigint, _table_version bigint, _extracted_at text, data jsonb")
COPY_COLUMNS = sql.SQL("_seq, _table_version, _extracted_at, data")
METADATA_NAMES = {TABLE_VERSION, *(c.name for c in RECORD_METADATA)}

_ENVELOPE = {
    TABLE_VERSION: sql.SQL("s._table_version"),
    "_sdc_extracted_at": sql.SQL("s._extracted_at::timestamp with time zone"),
    "_sdc_received_at": sql.SQL("now()"),
    "_sdc_batched_at": sql.SQL("now()"),
    "_sdc_sequence": sql.SQL("s._seq"),
}


def value_expr(column: Column) -> sql.Composable:
    """The column's value from a staged row `s`, cast in PostgreSQL (no per-row Python)."""
    if column.source is None:
        return _ENVELOPE[column.name]
    key = sql.Literal(column.source)
    if column.pg_type == "jsonb":
        return sql.SQL("NULLIF(s.data -> {}, 'null'::jsonb)").format(key)
    if column.pg_type == "text":
        return sql.SQL("(s.data ->> {})").format(key)
    return sql.SQL("(s.data ->> {})::{}").format(key, sql.SQL(column.pg_type))


def _names(columns: list[str], prefix: str = "") -> sql.Composable:
    if prefix:
        return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in columns)
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def typed_rows(spec: TableSpec, source: sql.Composable, where: sql.Composable) -> sql.Composed:
    """SELECT of the staged rows as table columns, plus their arrival order `_sdc_seq`."""
    exprs = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(value_expr(c), sql.Identifier(c.name)) for c in spec.columns
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


def upsert(spec: TableSpec, rows: sql.Composable, *, hard_delete: bool) -> sql.Composed:
    """Newest row per key wins in the batch, then an upsert guarded by version and change."""
    columns = [c.name for c in spec.columns]
    data_columns = [c for c in columns if c not in METADATA_NAMES]
    order: list[sql.Composable] = [sql.SQL("{} ASC").format(sql.Identifier(k)) for k in spec.keys]
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
    statement = sql.SQL(
        "WITH src AS (SELECT DISTINCT ON ({keys}) * FROM ({rows}) r ORDER BY {order}), "
        "ins AS (INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM src {keep} "
        "ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE ({guard} AND {changed}) OR {joins}) "
    ).format(
        keys=_names(list(spec.keys)),
        rows=rows,
        order=sql.SQL(", ").join(order),
        table=spec.qualified(),
        cols=_names(columns),
        keep=keep,
        sets=sql.SQL(", ").join(assignments),
        guard=guard,
        changed=changed,
        joins=joins_version,
    )
    if not hard_delete:
        return statement + sql.SQL("SELECT 1")
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = src.{k}").format(k=sql.Identifier(k)) for k in spec.keys
    )
    return statement + sql.SQL(
        "DELETE FROM {table} AS t USING src WHERE src.{deleted} IS NOT NULL AND {match} AND {guard}"
    ).format(
        table=spec.qualified(),
        deleted=sql.Identifier(DELETED_AT),
        match=match,
        guard=version_guard(spec, "t", "src"),
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
    "CREATE OR REPLACE FUNCTION pg_temp.sdc_fits(v text, t text) RETURNS boolean "
    "LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('SELECT %L::%s', v, t); RETURN true; "
    "EXCEPTION WHEN others THEN RETURN false; END $$"
)


def first_unfit(spec: TableSpec, stage: sql.Composable) -> sql.Composed | None:
    """The first staged row with a value its column type cannot hold: (line, field, type)."""
    typed = [c for c in spec.columns if c.source is not None and c.pg_type not in ("text", "jsonb")]
    if not typed:
        return None
    probes = sql.SQL(" UNION ALL ").join(
        sql.SQL(
            "(SELECT s._seq, {f}, {t} FROM {stage} s "
            "WHERE NOT pg_temp.sdc_fits(s.data ->> {f}, {t}) ORDER BY s._seq LIMIT 1)"
        ).format(f=sql.Literal(c.source), t=sql.Literal(c.pg_type), stage=stage)
        for c in typed
    )
    return sql.SQL("SELECT * FROM ({}) p ORDER BY 1 LIMIT 1").format(probes)
