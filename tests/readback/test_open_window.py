"""The open window read by DuckDB at each step of an hourly schedule (issue 18): after each increment,
after a run killed between an increment's upload and its record, and after the close's compaction,
every record up to the run's end is in the table root exactly once."""

import json
import shutil

import duckdb

from conftest import run

DAY = "2024-01-03"


def glob(dest):
    return f"{dest}/audit_logs/subdomain=*/created_date=*/*.parquet"


def read(dest):
    cur = duckdb.connect().cursor()
    cur.execute(
        f"SELECT count(*), count(DISTINCT id), max(created_at) FROM read_parquet('{glob(dest)}', hive_partitioning = true)"
    )
    rows, ids, _ = cur.fetchall()[0]
    return rows, ids


def export_until(simulator, dest, until):
    done = run(["export", "--subdomain", "acme", "--dest", str(dest), "--since", DAY, "--until", until,
                "--window", "1d", "--base-url", simulator, "--recheck", "0"])
    assert done.returncode == 0, done.stderr


def expected(source, until):
    return sum(1 for r in source if DAY <= r["created_at"] < until)


def test_duckdb_sees_the_open_window_once_at_every_step_and_one_file_a_day_after_the_close(
        simulator, source, tmp_path):
    dest = tmp_path / "lake"
    state = dest / "_auditlake/subdomain=acme/open.json"
    recorded = None
    for hour in [3, 6, 9, 12]:
        until = f"{DAY}T{hour:02}:00:00Z"
        export_until(simulator, dest, until)
        rows, ids = read(dest)
        assert rows == ids == expected(source, until), (until, rows, ids)
        if hour == 9:
            recorded = state.read_bytes()
    assert json.loads(state.read_text())["covered_to"] == f"{DAY}T12:00:00Z"

    # A run killed between its increment's upload and its record: the part is there, unnamed.
    state.write_bytes(recorded)
    rows, ids = read(dest)
    assert rows == ids == expected(source, f"{DAY}T12:00:00Z")
    export_until(simulator, dest, f"{DAY}T15:00:00Z")
    rows, ids = read(dest)
    assert rows == ids == expected(source, f"{DAY}T15:00:00Z")

    export_until(simulator, dest, "2024-01-04")
    rows, ids = read(dest)
    assert rows == ids == expected(source, "2024-01-04")
    folder = dest / f"audit_logs/subdomain=acme/created_date={DAY}"
    assert [p.name for p in folder.iterdir()] == ["part-20240103T0000Z-0.parquet"]
    shutil.rmtree(dest)
