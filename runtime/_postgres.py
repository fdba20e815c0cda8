"""PostgreSQL storage: where a store lives in a database (``PgLocation``) and a connection
that runs the stores' SQL there (``PgConnection``).

A storage URL (``postgresql://user@host:5432/db``, optionally ``#prefix``) names one
database that many actors share; each store (a resource's log, the supervisor's tables,
the budget's, ...) gets a schema of its own, named from the prefix (default
``agentcast``) and the store's place, e.g. ``agentcast/resources/inventory``. A store's
statements are said in SQLite's dialect and translated once each (``to_postgres``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.pq import TransactionStatus

from ._sql_dialect import to_postgres

SCHEMES = ("postgresql://", "postgres://")
_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database rather than a folder."""
    return text.startswith(SCHEMES)


class PgLocation:
    """A place in a PostgreSQL database, used the way a ``Path`` under the storage root is:
    ``root / "resources" / "inventory.sqlite"`` names the schema of that store.

    Args:
        url: ``postgresql://...`` with an optional ``#prefix`` for the schemas' names.
        parts: the path below the root.
    """

    def __init__(self, url: str, parts: tuple[str, ...] = ()) -> None:
        self.url = url
        self.dsn, _, prefix = url.partition("#")
        self.prefix = prefix or "agentcast"
        self.parts = parts

    def __truediv__(self, part: str) -> PgLocation:
        return PgLocation(self.url, (*self.parts, part))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PgLocation) and (self.url, self.parts) == (other.url, other.parts)

    def __hash__(self) -> int:
        return hash((self.url, self.parts))

    def __str__(self) -> str:
        return self.url if not self.parts else f"{self.url}/{'/'.join(self.parts)}"

    def __repr__(self) -> str:
        return f"PgLocation({self.url!r}, {self.parts!r})"

    @property
    def stem(self) -> str:
        return self.parts[-1].removesuffix(".sqlite") if self.parts else self.prefix

    def resolve(self) -> PgLocation:
        return self

    @property
    def schema(self) -> str:
        """The schema that holds this store's tables (hashed when too long for a name)."""
        name = self.place
        if len(name.encode()) <= _MAX_IDENTIFIER:
            return name
        digest = hashlib.blake2b(name.encode(), digest_size=8).hexdigest()
        return f"{name.encode()[: _MAX_IDENTIFIER - 17].decode(errors='ignore')}~{digest}"

    @property
    def place(self) -> str:
        """The store's full place, ``<prefix>/<part>/...`` (its schema's comment, so that
        a hashed schema name still tells which store it holds)."""
        return "/".join([self.prefix, *(p.removesuffix(".sqlite") for p in self.parts)])

    def exists(self) -> bool:
        """Whether the store's schema has been created."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (self.schema,)
            ).fetchone()
        return row is not None

    def stores(self) -> list[str]:
        """The stores directly below this place that exist, by name (``stem``), sorted:
        the PostgreSQL side of listing ``<folder>/*.sqlite``."""
        below = f"{self.place}/"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(_PLACES, (f"{_like(below)}%", f"{_like(below)}%")).fetchall()
        names = {place.removeprefix(below) for (place,) in rows if place.startswith(below)}
        return sorted(n for n in names if n and "/" not in n and "~" not in n)  # ~: hashed


# A schema's place is its name, or, for a hashed name, its comment (``PgConnection``).
_PLACES = """
SELECT COALESCE(obj_description(oid, 'pg_namespace'), nspname) FROM pg_namespace
WHERE nspname LIKE %s OR obj_description(oid, 'pg_namespace') LIKE %s
"""


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Row(tuple[Any, ...]):
    """A row read by position or by column name, as ``sqlite3.Row``."""

    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _named_rows(cursor: Any) -> Any:
    names = tuple(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> _Row:
        row = _Row(values)
        row._names = names
        return row

    return make


class PgConnection:
    """A PostgreSQL connection with the calls the stores make on a ``sqlite3.Connection``
    (``execute``, ``executemany``, ``executescript``, ``in_transaction``, ``row_factory``,
    ``close``), every statement translated from SQLite's dialect. Autocommit outside the
    ``BEGIN``/``COMMIT`` that ``runtime.transaction`` issues; one thread at a time.

    Args:
        location: the store's place; its schema is created if missing.
        synchronous: wait for the commit record to be flushed before a ``COMMIT``
            returns (``Durability.FULL``); off, a committed write survives a crash of any
            process but PostgreSQL's server.
    """

    def __init__(
        self, location: PgLocation, *, synchronous: bool = True, read_only: bool = False
    ) -> None:
        self.location = location
        self._conn = psycopg.connect(location.dsn, autocommit=True)
        self.row_factory: object = None
        self._keys: dict[str, tuple[list[str], list[str]]] = {}
        schema = pgsql.Identifier(location.schema)
        if read_only:  # a reader never makes the store it reads
            self._conn.execute("SET default_transaction_read_only TO on")
        else:
            self._create(schema)
        self._conn.execute(pgsql.SQL("SET search_path TO {}").format(schema))
        self._conn.execute(f"SET synchronous_commit TO {'on' if synchronous else 'off'}")

    def _create(self, schema: pgsql.Identifier) -> None:
        with contextlib.suppress(psycopg.errors.UniqueViolation):  # made at the same moment
            self._conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        if self.location.schema != self.location.place:  # hashed: say which store it is
            with contextlib.suppress(psycopg.Error):  # only listing needs it (``stores``)
                comment = pgsql.SQL("COMMENT ON SCHEMA {} IS {}")
                self._conn.execute(comment.format(schema, pgsql.Literal(self.location.place)))

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        cursor = self._cursor()
        cursor.execute(self._translate(sql), params or None)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cursor = self._cursor()
        cursor.executemany(self._translate(sql), list(rows))
        return cursor

    def executescript(self, script: str) -> None:
        # Line comments first: a ';' inside one must not split a statement.
        code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
        for statement in code.split(";"):
            if statement.strip():
                self.execute(statement)

    def close(self) -> None:
        self._conn.close()

    def _cursor(self) -> Any:
        factory = _named_rows if self.row_factory is not None else psycopg.rows.tuple_row
        return self._conn.cursor(row_factory=factory)

    def _translate(self, sql: str) -> str:
        return _translated(sql, lambda table: self._table_keys(table))

    def _table_keys(self, table: str) -> tuple[list[str], list[str]]:
        if table not in self._keys:
            rows = self._conn.execute(_KEYS, (table,)).fetchall()
            self._keys[table] = (
                [name for name, key in rows if key],
                [name for name, key in rows if not key],
            )
        return self._keys[table]


_KEYS = """
SELECT a.attname, COALESCE(i.indisprimary, false)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid AND c.relnamespace = current_schema()::regnamespace
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY(i.indkey)
WHERE c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


_TRANSLATED: dict[str, str] = {}


def _translated(sql: str, keys: Any) -> str:
    # Cached by text: a statement that needs a table's key (``INSERT OR REPLACE``) gets the
    # same key in every schema, since every schema of a kind has the same tables.
    found = _TRANSLATED.get(sql)
    if found is None:
        if len(_TRANSLATED) > 4096:  # statements are a fixed set; never grow without bound
            _TRANSLATED.clear()
        found = _TRANSLATED[sql] = to_postgres(sql, keys)
    return found
