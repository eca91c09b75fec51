"""The lake as a Delta table (`--table-format delta`, issue 19), read by real Delta readers: delta-rs
(Python `deltalake`) and polars' `read_delta`. Every record of the source once, every field equal;
the open window at every step of a schedule; a repair's new version holds the new rows and the
version before it the old ones; plain Parquet readers keep reading the partition folders."""

import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from conftest import SINCE, UNTIL, run

COLUMNS = ["id", "url", "action", "action_label", "actor_id", "actor_name", "change_description",
           "created_at", "ip_address", "source_id", "source_label", "source_type"]


def export(simulator, dest, until, *extra, since=SINCE, window="1d"):
    done = run(["export", "--subdomain", "acme", "--dest", str(dest), "--since", since, "--until", until,
                "--window", window, "--base-url", simulator, "--table-format", "delta", *extra])
    assert done.returncode == 0, done.stderr
    return done


def epoch_ms(text):
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def delta_lake(simulator, tmp_path_factory):
    """Hourly windows over eight days: 192 commits, so the log has a checkpoint (every 100)."""
    dest = tmp_path_factory.mktemp("delta")
    export(simulator, dest, UNTIL, window="1h")
    return dest


def test_the_log_has_a_checkpoint_that_readers_use(delta_lake):
    log = delta_lake / "audit_logs/_delta_log"
    assert (log / "00000000000000000100.checkpoint.parquet").exists()
    assert json.loads((log / "_last_checkpoint").read_text())["version"] >= 100


def test_deltalake_reads_every_record_once_with_every_field(delta_lake, source):
    table = DeltaTable(str(delta_lake / "audit_logs")).to_pyarrow_table()
    assert table.num_rows == len(source)
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids) == len({r["id"] for r in source})
    by_id = {r["id"]: r for r in source}
    rows = table.to_pylist()
    for row in rows[:: max(1, len(rows) // 500)]:
        want = by_id[row["id"]]
        for column in COLUMNS:
            if column == "created_at":
                got = int(row["created_at"].timestamp() * 1000)
                assert got == epoch_ms(want["created_at"]), row["id"]
            else:
                assert row[column] == want.get(column), (row["id"], column)
        assert str(row["created_date"]) == want["created_at"][:10]
        assert row["subdomain"] == "acme"


# DuckDB's delta_scan, run by the Python of the venv that holds the duckdb-ext-delta wheel
# (`make` sets DUCKDB_DELTA_PYTHON). The extension is loaded from the wheel, never downloaded.
DUCKDB_DELTA = '''
import pathlib, sys
import duckdb, duckdb_ext
extensions = pathlib.Path(list(duckdb_ext.__path__)[0]) / "extensions"
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
con.execute(f"SET extension_directory = '{extensions}'")
con.execute("LOAD delta")
row = con.execute(
    "SELECT count(*), count(DISTINCT id), epoch_ms(min(created_at)), epoch_ms(max(created_at)),"
    " CAST(min(created_date) AS VARCHAR) FROM delta_scan(?)", [sys.argv[1]]).fetchall()[0]
import json
print(json.dumps(list(row)))
'''


def test_duckdb_delta_scan_reads_the_table(delta_lake, source):
    python = os.environ.get("DUCKDB_DELTA_PYTHON")
    if not python:
        pytest.skip("DUCKDB_DELTA_PYTHON is not set (make test sets it)")
    done = subprocess.run([python, "-c", DUCKDB_DELTA, str(delta_lake / "audit_logs")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows, ids, first, last, day = json.loads(done.stdout)
    times = [epoch_ms(r["created_at"]) for r in source]
    assert (rows, ids) == (len(source), len(source))
    assert (first, last) == (min(times), max(times))
    assert day == SINCE


def test_polars_read_delta_agrees(delta_lake, source):
    frame = pl.read_delta(str(delta_lake / "audit_logs"))
    assert frame.height == len(source)
    assert frame["id"].n_unique() == len(source)


def test_plain_parquet_readers_read_the_partition_folders_beside_the_log(delta_lake, source):
    """The way the README tells each to read a lake with a log: DuckDB and polars name the
    partition folders; pyarrow's dataset skips `_`-prefixed folders by itself."""
    glob = f"{delta_lake}/audit_logs/subdomain=*/created_date=*/*.parquet"
    cur = duckdb.connect().cursor()
    cur.execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{glob}', hive_partitioning = true)")
    assert cur.fetchall()[0] == (len(source), len(source))
    frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert frame.height == frame["id"].n_unique() == len(source)
    assert frame["created_date"].dtype == pl.Date
    import pyarrow.dataset as ds
    table = ds.dataset(str(delta_lake / "audit_logs"), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(source)


def test_the_open_window_is_read_once_at_every_version(simulator, source, tmp_path):
    dest = tmp_path / "lake"
    day = "2024-01-03"
    for until in [f"{day}T06:00:00Z", f"{day}T12:00:00Z", "2024-01-04"]:
        export(simulator, dest, until, "--recheck", "0", since=day)
        table = DeltaTable(str(dest / "audit_logs")).to_pyarrow_table()
        expected = sum(1 for r in source if day <= r["created_at"] < until)
        assert table.num_rows == len(set(table.column("id").to_pylist())) == expected, until
    history = [h["operation"] for h in DeltaTable(str(dest / "audit_logs")).history()]
    assert history[0] == "OPTIMIZE", history


def test_a_repair_is_one_version_that_restores_the_window(simulator, tmp_path):
    dest = tmp_path / "lake"
    day, end = "2024-01-02", "2024-01-03"
    export(simulator, dest, end, "--recheck", "0", since=day)
    root = dest / "audit_logs"
    before = DeltaTable(str(root))
    old_version = before.version()
    old_ids = set(before.to_pyarrow_table().column("id").to_pylist())
    # The window's file damaged (a record dropped), then `repair --deep` re-exports the window.
    folder = root / f"subdomain=acme/created_date={day}"
    part = sorted(folder.iterdir())[0]
    damaged = pq.read_table(part)
    dropped = damaged.column("id")[0].as_py()
    pq.write_table(damaged.filter(pc.not_equal(damaged.column("id"), dropped)), part)
    repaired = run(["repair", "--subdomain", "acme", "--dest", str(dest), "--deep", "--base-url", simulator])
    assert repaired.returncode == 0, repaired.stderr
    after = DeltaTable(str(root))
    assert after.version() == old_version + 1
    assert set(after.to_pyarrow_table().column("id").to_pylist()) == old_ids
    assert after.history(1)[0]["operation"] == "REPAIR"


def test_the_readmes_delta_snippet_reads_the_table(delta_lake, source):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n### A Delta table", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)
    scope = {}
    exec(compile(code.replace("lake/audit_logs", str(delta_lake / "audit_logs")), "README.md (delta)", "exec"), scope)
    assert scope["table"].num_rows == scope["frame"].height == len(source)
