"""Render the Athena DDL (tables and views) for a lake on S3."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from hsl_live.errors import QueryError
from hsl_live.query import QUERIES_DIR, View, in_dependency_order, load_views

DEFAULT_DATABASE = "hsl_live"
FIRST_YEAR = 2018

# Bucket names: 3-63 characters of lower-case letters, digits, dots and hyphens, starting
# and ending with a letter or digit. Prefixes: S3 key characters safe inside a SQL literal.
_LOCATION = re.compile(
    r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?P<prefix>(?:/[A-Za-z0-9!_.*()=+-]+)*)/?"
)
_DATABASE = re.compile(r"[a-z_][a-z0-9_]{0,254}")
_VIEW_HEAD = re.compile(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+(\w+)", re.IGNORECASE)
_STATEMENT_END = re.compile(r";[ \t]*\n")
_TABLE_NAME = re.compile(
    r"CREATE\s+EXTERNAL\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\w+\.(\w+)", re.IGNORECASE
)


def validate_location(location: str) -> str:
    """Return `s3://bucket/prefix` without a trailing slash; raise QueryError if malformed."""
    match = _LOCATION.fullmatch(location.strip())
    if match is None or ".." in match["bucket"]:
        raise QueryError(
            f"--location must look like s3://bucket/prefix (a valid bucket name, a prefix of "
            f"letters, digits and !_.*()=+- separated by /), got {location!r}"
        )
    return f"s3://{match['bucket']}{match['prefix']}"


def validate_database(database: str) -> str:
    """Return an Athena database name; raise QueryError unless lower-case letters, digits, _."""
    if _DATABASE.fullmatch(database) is None:
        raise QueryError(
            f"--database must be lower-case letters, digits and underscores, got {database!r}"
        )
    return database


def render_tables(
    location: str,
    database: str = DEFAULT_DATABASE,
    start_year: int | None = None,
    queries_dir: Path = QUERIES_DIR,
) -> str:
    """Return tables.sql for a lake location, database and first projected year.

    `start_year` defaults to the current UTC year; partitions before it are not projected.
    """
    year = datetime.now(UTC).year if start_year is None else start_year
    if not FIRST_YEAR <= year <= datetime.now(UTC).year:
        raise QueryError(
            f"--start-year must be between {FIRST_YEAR} and this year, got {start_year}"
        )
    template = (queries_dir / "tables.sql").read_text(encoding="utf-8")

    # Plain replacements: the template also holds Athena's own ${year} style variables.
    return (
        template.replace("${LOCATION}", validate_location(location))
        .replace("${DATABASE}", validate_database(database))
        .replace("${START_YEAR}", str(year))
    )


def render_view(view: View, database: str = DEFAULT_DATABASE) -> str:
    """Return a view's Athena SQL with its name and every table it reads qualified."""
    qualified = validate_database(database)
    text = _VIEW_HEAD.sub(lambda m: f"CREATE OR REPLACE VIEW {qualified}.{m[1]}", view.athena_sql)
    for table in sorted(view.reads):
        reference = re.compile(rf"\b(FROM|JOIN)(\s+){table}\b", re.IGNORECASE)
        text = reference.sub(rf"\1\2{qualified}.{table}", text)

    return text.rstrip().rstrip(";") + ";\n"


def render_statements(
    location: str,
    database: str = DEFAULT_DATABASE,
    start_year: int | None = None,
    queries_dir: Path = QUERIES_DIR,
) -> list[tuple[str, str]]:
    """Return (name, SQL) for each statement, one per Athena query, in an order that works.

    The names are `database`, the three tables, then the views, dependencies first.
    """
    tables = render_tables(location, database, start_year, queries_dir)
    statements = []
    for chunk in _STATEMENT_END.split(tables):
        if "CREATE" not in chunk:
            continue
        table = _TABLE_NAME.search(chunk)
        statements.append((table[1] if table else "database", chunk.strip() + ";\n"))

    views = in_dependency_order(load_views(queries_dir))
    statements += [(view.name, render_view(view, database)) for view in views]

    return statements


def render_ddl(
    location: str,
    database: str = DEFAULT_DATABASE,
    start_year: int | None = None,
    queries_dir: Path = QUERIES_DIR,
) -> str:
    """Return every statement of render_statements as one script, blank-line separated."""
    statements = render_statements(location, database, start_year, queries_dir)
    return "\n".join(sql for _, sql in statements)
