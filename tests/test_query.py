"""Running views and ad-hoc Athena SQL on a local lake with DuckDB."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics_lake import Lake, build_lake, synthetic_capture, write_capture
from hsl_live.cli import main
from hsl_live.errors import QueryError
from hsl_live.query import LocalLake, QueryResult, format_result, load_views, to_duckdb


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    folder = tmp_path_factory.mktemp("query")
    capture = folder / "synthetic.capture"
    write_capture(capture, synthetic_capture())
    return build_lake(capture, folder / "lake")


@pytest.fixture(scope="module")
def local(lake: Lake) -> Iterator[LocalLake]:
    with LocalLake(lake.path) as opened:
        yield opened


def test_to_duckdb_makes_percentiles_exact() -> None:
    sql = to_duckdb("SELECT approx_percentile(spd, 0.9) FROM processed")

    assert "QUANTILE_CONT(SPD, 0.9)" in sql.upper()


def test_to_duckdb_translates_athena_functions() -> None:
    sql = to_duckdb("SELECT to_unixtime(tst), date_diff('second', tst, received_at) FROM t")

    assert "EPOCH(TST)" in sql.upper()
    assert "TO_UNIXTIME" not in sql.upper()


def test_run_ad_hoc_athena_sql(lake: Lake, local: LocalLake) -> None:
    sql = (
        "SELECT count(*) AS n, count_if(event_type = 'VP') AS vps, "
        "max(to_unixtime(tst)) AS last FROM processed WHERE year = '2024'"
    )

    result = local.run(sql)

    assert result.columns == ["n", "vps", "last"]
    assert result.rows == [
        (
            len(lake.events),
            sum(e.event_type == "VP" for e in lake.events),
            max(e.tst for e in lake.events).timestamp(),
        )
    ]


def test_run_view_by_name_sorted_and_limited(local: LocalLake) -> None:
    everything = local.run("delay_by_route_hour")

    first = local.run("delay_by_route_hour", limit=2)

    assert len(everything.rows) > 2
    assert first.rows == everything.rows[:2]
    assert everything.rows == sorted(everything.rows)


def test_run_views_can_be_read_by_sql(local: LocalLake) -> None:
    result = local.run("SELECT sum(positions) FROM delay_by_route_hour WHERE hour = '07';")

    assert result.rows[0][0] > 0


def test_run_unknown_view_lists_known_ones(local: LocalLake) -> None:
    with pytest.raises(QueryError, match="no view named 'delays'") as caught:
        local.run("delays")

    for name in load_views():
        assert name in str(caught.value)


def test_run_sql_error_carries_duckdb_message(local: LocalLake) -> None:
    with pytest.raises(QueryError, match="nosuch"):
        local.run("SELECT nosuch FROM processed")


def test_run_unparseable_sql_says_so(local: LocalLake) -> None:
    with pytest.raises(QueryError, match="cannot parse"):
        local.run("SELECT FROM WHERE (")


def test_run_negative_limit_is_refused(local: LocalLake) -> None:
    with pytest.raises(QueryError, match="--limit"):
        local.run("stop_events", limit=-1)


def test_local_lake_without_parquet_says_how_to_fill_it(tmp_path: Path) -> None:
    (tmp_path / "processed").mkdir()

    with pytest.raises(QueryError, match="no Parquet files yet"):
        LocalLake(tmp_path)


def test_local_lake_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="does not exist"):
        LocalLake(tmp_path / "nowhere")


def test_local_lake_with_only_processed_still_runs_every_view(lake: Lake, tmp_path: Path) -> None:
    (tmp_path / "processed").symlink_to(lake.path / "processed")

    with LocalLake(tmp_path) as partial:
        rejects = partial.run("rejects_by_reason_hour")
        quality = partial.run("data_quality_by_operator_hour")

    assert rejects.rows == []
    assert len(quality.rows) > 0


def test_format_result_csv_round_trips() -> None:
    result = QueryResult(["route", "share"], [("1052", 0.125), (None, 1 / 3)])

    parsed = list(csv.reader(io.StringIO(format_result(result, "csv"))))

    assert parsed == [["route", "share"], ["1052", "0.125"], ["", str(1 / 3)]]


def test_format_result_json_is_an_array_of_objects() -> None:
    result = QueryResult(["route", "n"], [("1052", 3)])

    assert json.loads(format_result(result, "json")) == [{"route": "1052", "n": 3}]


def test_format_result_table_aligns_and_counts() -> None:
    result = QueryResult(["route", "share"], [("1052", 0.12345), ("9", None)])

    lines = format_result(result, "table").splitlines()

    assert lines[0] == "route  share"
    assert lines[2] == "1052   0.123"
    assert lines[3] == "9      NULL"
    assert lines[-1] == "(2 rows)"


def test_cli_query_prints_csv(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["query", "--lake-url", str(lake.path), "stop_events", "--format", "csv"]

    status = main([*argv, "--limit", "3"])

    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert status == 0
    assert rows[0][:4] == ["year", "month", "day", "mode"]
    assert len(rows) == 4


def test_cli_query_without_name_lists_views(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["query"])

    assert status == 0
    assert capsys.readouterr().out.split() == list(load_views())


def test_cli_query_unknown_format_fails_naming_it(
    lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["query", "--lake-url", str(lake.path), "stop_events", "--format", "xml"])

    assert status == 2
    assert "--format must be one of table, csv, json, got 'xml'" in capsys.readouterr().err


def test_the_serving_commands_do_not_load_duckdb_or_sqlglot() -> None:
    code = "import sys, hsl_live.cli; print(sorted({'duckdb', 'sqlglot'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert loaded.strip() == "[]"


def test_cli_query_unknown_view_fails_cleanly(
    lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["query", "--lake-url", str(lake.path), "nope"])

    assert status == 2
    assert "no view named 'nope'" in capsys.readouterr().err


def test_cli_query_refuses_s3_lake(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["query", "--lake-url", "s3://hsl-lake/x", "stop_events"])

    assert status == 2
    assert "athena-ddl" in capsys.readouterr().err


def test_to_duckdb_date_diff_in_milliseconds_avoids_icu_and_keeps_result() -> None:
    sql = to_duckdb(
        "SELECT date_diff('millisecond', from_iso8601_timestamp('2024-02-13T16:33:00.250Z'), "
        "from_iso8601_timestamp('2024-02-13T16:33:02.000Z')) AS ms"
    )

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    assert "date_diff" not in sql.lower()
    assert connection.execute(sql).fetchall() == [(1750,)]
