"""Hot statements on the driver's cursor: SQL and type conversions from SQLAlchemy, made once."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Parameter names in placeholder order (positional drivers), else None (named ones).
    order: tuple[str, ...] | None
    processors: dict[str, Processor]
    # Values the statement carries itself (literals, scalar column defaults of an insert).
    fixed: dict[str, Any]
    # For rows(): a select's rows as named tuples, each value through its type's processor.
    row_type: Any
    result_processors: tuple[Processor | None, ...]


class Prepared:
    """A Core statement run on the DBAPI cursor of the connection it is given.

    Every registration runs a handful of small statements, and SQLAlchemy's execution path
    (cache key, execution context, bind processing, result wrapping) costs several times
    the statement itself: ~100 µs against ~15 µs here. The SQL is SQLAlchemy's, compiled
    once per dialect (and per set of insert keys), and every value goes through the column
    type's own bind processor, so what is stored is what SQLAlchemy would store. Results come
    back as the driver gives them: use this only where they are plain integers or strings.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        cache_key = (dialect.name, keys)
        compiled = self._compiled.get(cache_key)
        if compiled is None:
            compiled = self._compiled[cache_key] = _compile(self.statement, dialect, keys)
        return compiled

    def _values(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        merged = {**compiled.fixed, **params}
        for name, process in compiled.processors.items():
            if name in merged:
                merged[name] = process(merged[name])
        if compiled.order is None:
            return merged
        return tuple(merged[name] for name in compiled.order)

    def execute(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """Run once with PARAMS; the driver's cursor, for fetchone / fetchall."""
        params = params or {}
        compiled = self._compile(connection.dialect, tuple(params))
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with _as_sqlalchemy_errors(connection, compiled.sql):
            cursor.execute(compiled.sql, self._values(compiled, params))
        return cursor

    def executemany(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row; every row has the keys of the first."""
        if not rows:
            return
        compiled = self._compile(connection.dialect, tuple(rows[0]))
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with _as_sqlalchemy_errors(connection, compiled.sql):
            cursor.executemany(compiled.sql, [self._values(compiled, row) for row in rows])


    def rows(self, connection: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """A select's rows with each value as SQLAlchemy would give it (datetimes, JSON ...),
        read by attribute like SQLAlchemy's rows."""
        params = params or {}
        compiled = self._compile(connection.dialect, tuple(params))
        processors = compiled.result_processors
        make = compiled.row_type._make
        return [make(value if process is None else process(value)
                     for process, value in zip(processors, row, strict=True))
                for row in self.execute(connection, params).fetchall()]


class PreparedIn:
    """A statement with one `IN (...)` of values, Prepared once per number of values.

    BUILD makes the statement from that many bind parameters (an expanding parameter would
    be rendered anew for every execution). The lengths are bounded by the callers' batches.
    """

    def __init__(self, build: Callable[[list[BindParameter[Any]]], ClauseElement]) -> None:
        self._build = build
        self._by_count: dict[int, Prepared] = {}

    def execute(self, connection: Connection, values: Sequence[Any]) -> Any:
        """Run with VALUES in the `IN`; the driver's cursor."""
        prepared = self._by_count.get(len(values))
        if prepared is None:
            prepared = self._by_count[len(values)] = Prepared(self._build(
                [bindparam(f"in_{n}") for n in range(len(values))]))
        return prepared.execute(connection, {f"in_{n}": v for n, v in enumerate(values)})


@contextmanager
def _as_sqlalchemy_errors(connection: Connection, sql: str) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them (IntegrityError, OperationalError ...),
    which is what callers of the rest of the code catch."""
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as error:
        raise exc.DBAPIError.instance(sql, None, error, dbapi_error,
                                      dialect=connection.dialect) from error


def _compile(statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
    fixed = {name: bind.value for name, bind in compiled.binds.items()
             if not bind.required and bind.callable is None}
    for column in getattr(compiled, "insert_prefetch", ()):
        # Python-side column defaults of an insert: SQLAlchemy's execution context fills them.
        default = column.default
        if default is None or not default.is_scalar:
            raise ValueError(f"Prepared cannot fill the default of {column.key}")
        fixed[column.key] = default.arg
    processors: dict[str, Processor] = {}
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    order = tuple(compiled.positiontup) if compiled.positional else None
    columns = getattr(compiled, "_result_columns", None) or []
    row_type = namedtuple("Row", [column.keyname for column in columns],  # type: ignore[misc]
                          rename=True)
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                    for column in columns)
    return _Compiled(compiled.string, order, processors, fixed, row_type, results)
