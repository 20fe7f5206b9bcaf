"""The Athena DDL: tables for a location, qualified views, and the athena-ddl command."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import sqlglot
from sqlglot import exp

from hsl_live.athena import (
    render_statements,
    render_tables,
    render_view,
    validate_database,
    validate_location,
)
from hsl_live.cli import main
from hsl_live.errors import QueryError
from hsl_live.query import load_views
from hsl_live.schema import SCHEMAS, Zone

LOCATION = "s3://hsl-lake/prod/v1"
ATHENA_TYPES = {
    pl.Int8: "TINYINT",
    pl.Int16: "SMALLINT",
    pl.Int32: "INT",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE",
    pl.Boolean: "BOOLEAN",
    pl.String: "STRING",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMP",
}


def table_statements(sql: str) -> dict[str, exp.Create]:
    statements = sqlglot.parse(sql, read="athena")
    return {
        s.this.this.name: s for s in statements if isinstance(s, exp.Create) and s.kind == "TABLE"
    }


def properties(create: exp.Create) -> dict[str, str]:
    found = {}
    for prop in create.find_all(exp.Property):
        value = prop.args.get("value")
        if isinstance(prop.this, exp.Literal) and value is not None:
            found[prop.this.name] = value.name
    return found


def test_render_tables_parses_as_athena_ddl() -> None:
    sql = render_tables(LOCATION, start_year=2024)

    assert set(table_statements(sql)) == {"processed", "raw", "rejected"}


@pytest.mark.parametrize("zone", list(Zone))
def test_render_tables_columns_match_the_lake_schema(zone: Zone) -> None:
    create = table_statements(render_tables(LOCATION, start_year=2024))[zone]

    columns = {
        c.name: c.args["kind"].sql(dialect="hive")
        for c in create.this.expressions
        if isinstance(c, exp.ColumnDef)
    }

    expected = {name: ATHENA_TYPES[dtype.base_type()] for name, dtype in SCHEMAS[zone].items()}
    assert columns == expected


@pytest.mark.parametrize("zone", list(Zone))
def test_render_tables_projects_zero_padded_hours(zone: Zone) -> None:
    create = table_statements(render_tables(LOCATION, start_year=2024))[zone]

    props = properties(create)

    assert props["projection.enabled"] == "true"
    assert props["projection.year.range"] == "2024,NOW"
    for part in ("month", "day", "hour"):
        assert props[f"projection.{part}.type"] == "integer"
        assert props[f"projection.{part}.digits"] == "2"
    assert props["storage.location.template"] == (
        f"{LOCATION}/{zone}/year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}/"
    )
    partitions = create.find(exp.PartitionedByProperty)
    assert partitions is not None
    assert [c.name for c in partitions.this.expressions] == ["year", "month", "day", "hour"]


def test_render_tables_fills_every_placeholder() -> None:
    sql = render_tables(LOCATION, "transit", start_year=2023)

    for placeholder in ("${LOCATION}", "${DATABASE}", "${START_YEAR}"):
        assert placeholder not in sql
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS transit.processed" in sql
    assert f"LOCATION '{LOCATION}/raw/'" in sql
    assert "MSCK" not in sql.upper().replace("NO MSCK", "")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://hsl-lake", "s3://hsl-lake"),
        ("s3://hsl-lake/", "s3://hsl-lake"),
        ("s3://hsl.lake/a/b=c/", "s3://hsl.lake/a/b=c"),
    ],
)
def test_validate_location_normalises(location: str, expected: str) -> None:
    assert validate_location(location) == expected


@pytest.mark.parametrize(
    "location",
    [
        "hsl-lake/prefix",
        "https://hsl-lake.s3.amazonaws.com/x",
        "s3://",
        "s3://ab",
        "s3://Upper-Case",
        "s3://under_score",
        "s3://-starts-with-dash",
        "s3://a..b",
        "s3://bucket/with space",
        "s3://bucket/quote'",
        "s3://bucket//double",
        "s3://bucket/${LOCATION}",
    ],
)
def test_validate_location_rejects_bad_locations(location: str) -> None:
    with pytest.raises(QueryError, match="s3://bucket/prefix"):
        validate_location(location)


@pytest.mark.parametrize("database", ["", "HSL", "hsl-live", "1; DROP", "a b"])
def test_validate_database_rejects_bad_names(database: str) -> None:
    with pytest.raises(QueryError, match="--database"):
        validate_database(database)


@pytest.mark.parametrize("year", [2017, 3000])
def test_render_tables_rejects_start_year_outside_range(year: int) -> None:
    with pytest.raises(QueryError, match="--start-year"):
        render_tables(LOCATION, start_year=year)


@pytest.mark.parametrize("name", sorted(load_views()))
def test_render_view_qualifies_every_table(name: str) -> None:
    view = load_views()[name]

    statement = sqlglot.parse_one(render_view(view, "transit"), read="athena")

    assert isinstance(statement, exp.Create)
    assert statement.this.db == "transit"
    ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
    tables = [t for t in statement.expression.find_all(exp.Table) if t.name not in ctes]
    assert tables
    assert all(t.db == "transit" for t in tables)


def test_render_statements_put_dependencies_first() -> None:
    names = [name for name, _ in render_statements(LOCATION, start_year=2024)]

    assert names[:4] == ["database", "processed", "raw", "rejected"]
    assert set(names[4:]) == set(load_views())
    assert names.index("delay_by_route_hour") < names.index("delay_by_route_hour_recent")


def test_render_statements_are_one_statement_each() -> None:
    for name, sql in render_statements(LOCATION, start_year=2024):
        assert len(sqlglot.parse(sql, read="athena")) == 1, name


def test_cli_athena_ddl_prints_tables_and_views(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["athena-ddl", "--location", LOCATION, "--start-year", "2024"])

    out = capsys.readouterr().out
    assert status == 0
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS hsl_live.processed" in out
    assert "CREATE OR REPLACE VIEW hsl_live.stop_events AS" in out


def test_cli_athena_ddl_writes_one_file_per_statement(tmp_path: Path) -> None:
    status = main(["athena-ddl", "--location", LOCATION, "--out", str(tmp_path / "ddl")])

    files = sorted(p.name for p in (tmp_path / "ddl").iterdir())
    assert status == 0
    assert files[:2] == ["01-database.sql", "02-processed.sql"]
    assert len(files) == 4 + len(load_views())


def test_cli_athena_ddl_uses_an_s3_lake_url(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["athena-ddl", "--lake-url", "s3://hsl-lake/from-settings"])

    assert status == 0
    assert "s3://hsl-lake/from-settings/processed/" in capsys.readouterr().out


def test_cli_athena_ddl_needs_location_for_local_lake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["athena-ddl", "--lake-url", str(tmp_path)])

    assert status == 2
    assert "--location" in capsys.readouterr().err


def test_cli_athena_ddl_rejects_bad_location(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["athena-ddl", "--location", "s3://Bad_Bucket"])

    assert status == 2
    assert "'s3://Bad_Bucket'" in capsys.readouterr().err
