"""Run the Athena views, or ad-hoc Athena SQL, on the local lake with DuckDB.

The view files are written for Athena (Trino); sqlglot translates them to DuckDB. The lake's
zones become DuckDB views under the Athena table names, so the same SQL runs in both places.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp

from hsl_live.errors import QueryError
from hsl_live.resources import shipped_dir
from hsl_live.schema import SCHEMAS, Zone

QUERIES_DIR = shipped_dir("queries") / "athena"
PARTITION_COLUMNS = ("year", "month", "day", "hour")
FORMATS = ("table", "csv", "json")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DUCKDB_TYPES: dict[type[pl.DataType], str] = {
    pl.Int8: "TINYINT",
    pl.Int16: "SMALLINT",
    pl.Int32: "INTEGER",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE",
    pl.Boolean: "BOOLEAN",
    pl.String: "VARCHAR",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class View:
    """One view file: its name, the tables and views it reads, and its Athena SQL."""

    name: str
    reads: frozenset[str]
    athena_sql: str
    path: Path


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a finished query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def load_views(queries_dir: Path = QUERIES_DIR) -> dict[str, View]:
    """Read every `views/*.sql` file, keyed by view name; raise QueryError on a malformed one."""
    views: dict[str, View] = {}
    for path in sorted((queries_dir / "views").glob("*.sql")):
        view = _parse_view(path)
        if view.name != path.stem:
            raise QueryError(f"{path} creates view {view.name!r}; name the file {view.name}.sql")
        views[view.name] = view
    return views


def _parse_view(path: Path) -> View:
    text = path.read_text(encoding="utf-8")
    try:
        statement = sqlglot.parse_one(text, read="athena")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"{path} is not valid Athena SQL: {exc}") from exc
    if not isinstance(statement, exp.Create) or statement.kind != "VIEW":
        raise QueryError(f"{path} must hold one CREATE OR REPLACE VIEW statement")

    ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
    reads = {table.name for table in statement.expression.find_all(exp.Table)} - ctes

    return View(statement.this.name, frozenset(reads), text, path)


def to_duckdb(athena_sql: str) -> str:
    """Translate one Athena (Trino) statement to DuckDB's dialect.

    Athena's `approx_percentile` becomes DuckDB's exact `quantile_cont`: a local lake is small
    enough to afford exact answers, and tests can compare them with an exact computation.
    `date_diff('millisecond', a, b)` becomes a difference of epoch microseconds: DuckDB
    computes date_diff on TIMESTAMPTZ through ICU calendars, about ten times slower.
    """
    try:
        statement = sqlglot.parse_one(athena_sql, read="athena")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"cannot parse the SQL as Athena SQL: {exc}") from exc
    statement = statement.transform(_exact_quantile).transform(_epoch_milliseconds)

    return statement.sql(dialect="duckdb")


def _exact_quantile(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ApproxQuantile):
        return exp.Anonymous(this="quantile_cont", expressions=[node.this, node.args["quantile"]])
    return node


def _epoch_milliseconds(node: exp.Expression) -> exp.Expression:
    unit = node.args.get("unit")
    if not isinstance(node, exp.DateDiff) or unit is None or unit.name.upper() != "MILLISECOND":
        return node
    micros = exp.Sub(this=_epoch_us(node.this), expression=_epoch_us(node.expression))
    return exp.Paren(
        this=exp.IntDiv(this=exp.Paren(this=micros), expression=exp.Literal.number(1000))
    )


def _epoch_us(moment: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="epoch_us", expressions=[moment.copy()])


class LocalLake:
    """A DuckDB connection over a local lake folder with the Athena tables and views defined."""

    def __init__(self, lake: Path, queries_dir: Path = QUERIES_DIR) -> None:
        self.lake = lake
        self.views = load_views(queries_dir)
        self.connection = duckdb.connect()
        # Parquet's UTC timestamps read as TIMESTAMPTZ; Athena works in UTC, and so do we.
        self.connection.execute("SET TimeZone = 'UTC'")
        self._define_tables()
        self._define_views()

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.connection.close()

    def __enter__(self) -> LocalLake:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, name_or_sql: str, limit: int | None = None) -> QueryResult:
        """Run a view by name (ordered by all columns) or a SQL query in Athena's dialect."""
        if limit is not None and limit < 0:
            raise QueryError(f"--limit must be 0 or more, got {limit}")
        text = name_or_sql.strip().rstrip(";")
        if _NAME.fullmatch(text):
            sql = f"SELECT * FROM {self._view_name(text)} ORDER BY ALL"
        else:
            sql = to_duckdb(text)
        if limit is not None:
            sql = f"SELECT * FROM ({sql}) AS query LIMIT {limit}"

        try:
            cursor = self.connection.execute(sql)
            rows = cursor.fetchall()
        except duckdb.Error as exc:
            raise QueryError(f"the query failed in DuckDB: {exc}") from exc
        columns = [column[0] for column in cursor.description or ()]

        return QueryResult(columns, rows)

    def _view_name(self, name: str) -> str:
        if name in self.views or name in tuple(Zone):
            return name
        known = ", ".join([*self.views, *Zone])
        raise QueryError(f"no view named {name!r}; known views and tables: {known}")

    def _define_tables(self) -> None:
        if not self.lake.is_dir():
            raise QueryError(f"the lake folder {self.lake} does not exist; {_HOW_TO_FILL}")
        filled = [zone for zone in Zone if _has_parquet(self.lake / zone)]
        if not filled:
            raise QueryError(f"the lake at {self.lake} has no Parquet files yet; {_HOW_TO_FILL}")

        for zone in Zone:
            if zone in filled:
                pattern = _sql_text(str(self.lake / zone / "**" / "*.parquet"))
                sql = (
                    f"CREATE VIEW {zone} AS SELECT * FROM read_parquet({pattern}, "
                    "hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
                )
            else:
                sql = f"CREATE TABLE {zone} ({_empty_columns(zone)})"
            self.connection.execute(sql)

    def _define_views(self) -> None:
        for view in in_dependency_order(self.views):
            body = sqlglot.parse_one(view.athena_sql, read="athena").expression
            sql = f"CREATE VIEW {view.name} AS {to_duckdb(body.sql(dialect='athena'))}"
            try:
                self.connection.execute(sql)
            except duckdb.Error as exc:
                raise QueryError(f"view {view.name} ({view.path}) fails in DuckDB: {exc}") from exc


_HOW_TO_FILL = "`hsl-live replay FILE` or `hsl-live run` writes it (see --lake-url)"


def _has_parquet(folder: Path) -> bool:
    return folder.is_dir() and next(folder.rglob("*.parquet"), None) is not None


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _empty_columns(zone: Zone) -> str:
    columns = [
        f'"{name}" {_DUCKDB_TYPES[dtype.base_type()]}' for name, dtype in SCHEMAS[zone].items()
    ]
    columns += [f'"{name}" VARCHAR' for name in PARTITION_COLUMNS]
    return ", ".join(columns)


def in_dependency_order(views: dict[str, View]) -> list[View]:
    """Return the views so that each comes after the views it reads."""
    ordered: list[View] = []
    pending = dict(views)
    while pending:
        ready = [v for v in pending.values() if not (v.reads & pending.keys())]
        if not ready:
            raise QueryError(f"views depend on each other in a cycle: {', '.join(pending)}")
        for view in ready:
            ordered.append(view)
            del pending[view.name]

    return ordered


def run_query(
    lake: Path, name_or_sql: str, limit: int | None = None, queries_dir: Path = QUERIES_DIR
) -> QueryResult:
    """Run a view or SQL on a local lake folder and return its result."""
    with LocalLake(lake, queries_dir) as local:
        return local.run(name_or_sql, limit)


def format_result(result: QueryResult, fmt: str) -> str:
    """Render a result as an aligned text table, CSV or a JSON array of objects."""
    if fmt == "csv":
        return _csv(result)
    if fmt == "json":
        records = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        return json.dumps(records, default=_json_value, ensure_ascii=False, indent=1)
    if fmt == "table":
        return _table(result)
    raise QueryError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([[_text(value, full=True) for value in row] for row in result.rows])
    return out.getvalue().rstrip("\n")


def _table(result: QueryResult) -> str:
    cells = [[_text(value, full=False) for value in row] for row in result.rows]
    widths = [len(name) for name in result.columns]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    lines = [_table_line(result.columns, widths), _table_line(["-" * w for w in widths], widths)]
    lines += [_table_line(row, widths) for row in cells]
    lines.append(f"({len(result.rows)} row{'' if len(result.rows) == 1 else 's'})")
    return "\n".join(lines)


def _table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _text(value: object, *, full: bool) -> str:
    if value is None:
        return "" if full else "NULL"
    if isinstance(value, float) and not full:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
