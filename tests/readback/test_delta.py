"""The lake as a Delta table (`--table-format delta`, issue 19), read by real Delta readers: delta-rs
(Python `deltalake`), polars' `read_delta`, DuckDB's `delta_scan`, pyarrow and DataFusion through
`deltalake`. Every record of the source once, every field equal; the open window at every step of
a schedule; a repair's new version holds the new rows and the version before it the old ones
(the files a commit removed are kept for the table's retention); plain Parquet readers of the
partition folders read exactly the table once it keeps no removed files."""

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

from conftest import SINCE, UNTIL, run, serve

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


def test_pyarrow_and_datafusion_read_the_table_through_deltalake(delta_lake, source):
    """The way the README tells them to read a Delta table: the dataset of its latest version."""
    from datafusion import SessionContext
    dataset = DeltaTable(str(delta_lake / "audit_logs")).to_pyarrow_dataset()
    assert dataset.to_table().num_rows == len(source)
    ctx = SessionContext()
    ctx.register_dataset("audit_logs", dataset)
    [row] = ctx.sql("SELECT count(*) AS n, count(DISTINCT id) AS ids FROM audit_logs").to_pylist()
    assert (row["n"], row["ids"]) == (len(source), len(source))


def plain_reads(root):
    """What DuckDB, polars and pyarrow read of the partition folders, as plain Parquet:
    (rows, distinct ids) each."""
    glob = f"{root}/subdomain=*/created_date=*/*.parquet"
    cur = duckdb.connect().cursor()
    cur.execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{glob}', hive_partitioning = true)")
    duck = cur.fetchall()[0]
    frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert frame["created_date"].dtype == pl.Date
    import pyarrow.dataset as ds
    table = ds.dataset(str(root), format="parquet", partitioning="hive").to_table()
    arrow = (table.num_rows, len(set(table.column("id").to_pylist())))
    return [duck, (frame.height, frame["id"].n_unique()), arrow]


def test_plain_readers_of_the_partition_folders_are_exact_once_the_table_keeps_no_removed_files(
        simulator, source, tmp_path):
    """A day compacted: its hours' files are kept for the versions before the compaction, and a
    plain reader of the folders reads them too (the README says so). With the table's
    `delta.deletedFileRetentionDuration` set to 0 hours, the next run removes them, and DuckDB,
    polars and pyarrow read the folders the way the README tells them, exactly."""
    dest = tmp_path / "lake"
    since, until = "2024-01-02", "2024-01-03T02:00:00Z"
    export(simulator, dest, until, "--recheck", "0", since=since, window="1h")
    root = dest / "audit_logs"
    expected = sum(1 for r in source if since <= r["created_at"] < until)
    day = sum(1 for r in source if r["created_at"].startswith(since))
    assert plain_reads(root) == [(expected + day, expected)] * 3
    DeltaTable(str(root)).alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 0 hours"})
    export(simulator, dest, until, "--recheck", "0", since=since, window="1h")
    assert plain_reads(root) == [(expected, expected)] * 3
    assert DeltaTable(str(root)).to_pyarrow_table().num_rows == expected


def test_the_version_before_a_repair_still_reads_the_old_rows(simulator, source, tmp_path):
    """Records after LATE arrive late: the first export, from a simulator that does not serve them
    yet, commits their day without them; the recheck, against the simulator that serves them,
    repairs the day in one commit. delta-rs and polars read the new rows at the new version and
    the old rows at the version before it; verify counts the kept generation as the older
    version's, not as a stray."""
    dest = tmp_path / "lake"
    day, end, late = "2024-01-02", "2024-01-03", "2024-01-02T18:00:00Z"
    with serve("--hide-from", late) as early:
        export(early, dest, end, "--recheck", "0", since=day)
    root = str(dest / "audit_logs")
    old_version = DeltaTable(root).version()
    export(simulator, dest, end, "--recheck", "1d", since=day)
    table = DeltaTable(root)
    assert table.version() == old_version + 1
    assert table.history(1)[0]["operation"] == "REPAIR"
    new = {r["id"] for r in source if day <= r["created_at"] < end}
    old = {r["id"] for r in source if day <= r["created_at"] < late}
    assert old < new
    ids = table.to_pyarrow_table().column("id").to_pylist()
    assert sorted(ids) == sorted(new)
    before = DeltaTable(root, version=old_version).to_pyarrow_table().column("id").to_pylist()
    assert sorted(before) == sorted(old)
    assert pl.read_delta(root, version=old_version).height == len(old)
    assert pl.read_delta(root).height == len(new)
    checked = run(["verify", "--subdomain", "acme", "--dest", str(dest)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kept = len(DeltaTable(root, version=old_version).file_uris())
    said = "1 file it removed is" if kept == 1 else f"{kept} files it removed are"
    assert f"{said} kept for its older versions (retention 7 days)" in checked.stdout, checked.stdout


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
    assert scope["dataset"].count_rows() == len(source)
    # Version 1, the first window's commit (one hour), from before every compaction: its files
    # are kept, and it holds exactly that hour's records.
    old = scope["old"]
    times = old.column("created_at").to_pylist()
    hour = min(times).replace(minute=0, second=0, microsecond=0)
    assert max(times) < hour + dt.timedelta(hours=1)
    in_hour = [r["id"] for r in source if hour <= dt.datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) < hour + dt.timedelta(hours=1)]
    assert sorted(old.column("id").to_pylist()) == sorted(in_hour)
