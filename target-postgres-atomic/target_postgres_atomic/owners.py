"""Which stream owns a table, kept across runs in the schema's `_sdc_target_streams` table.

Two streams bound for one table (say `crm-orders` and `shop-orders` with one
`default_target_schema`) would silently merge their keys and refreshes; within a run the target
sees both names, across runs only this record does. A table without a row (created before the
record existed, or by someone else) is adopted by the first stream that loads it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from target_postgres_atomic import connector

OWNERS = "_sdc_target_streams"


class TableOwnedByAnotherStream(Exception):
    """The table was loaded by another stream in an earlier run."""


def claim(conn: psycopg.Connection, schema: str, table: str, stream: str) -> bool:
    """Record `stream` as the owner of `schema.table`, or refuse if another stream owns it;
    True when this claim is new. Call inside the transaction that holds the table's lock."""
    owners = sql.Identifier(schema, OWNERS)
    if table == OWNERS:
        raise TableOwnedByAnotherStream(
            f"table {schema}.{OWNERS} is the target's own record of table owners; "
            "give the stream another name with a stream map"
        )
    connector.lock_table(conn, schema, OWNERS)
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, stream text NOT NULL, "
            "claimed_at timestamptz NOT NULL DEFAULT now())"
        ).format(owners)
    )
    found = conn.execute(
        sql.SQL("SELECT stream FROM {} WHERE table_name = %s").format(owners), (table,)
    ).fetchone()
    if found is None:
        conn.execute(
            sql.SQL("INSERT INTO {} (table_name, stream) VALUES (%s, %s)").format(owners),
            (table, stream),
        )
        return True
    if found[0] != stream:
        raise TableOwnedByAnotherStream(
            f"table {schema}.{table} was loaded by stream '{found[0]}' in an earlier run; two "
            "streams must not share one table: give this one another name with a stream map, "
            f"or, if the table now belongs to '{stream}', run: DELETE FROM "
            f"{owners.as_string(None)} WHERE table_name = '{table}'"
        )
    return False
