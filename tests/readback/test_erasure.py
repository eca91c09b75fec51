"""`auditlake erase` read back by real readers (issue 27): after erasing a user, DuckDB, pyarrow,
polars and delta-rs (at every version of the Delta table that still reads) show no name or IP
the lake held for the user, every other record is unchanged field by field, and nothing the
lake writes besides the Parquet data (state, chain, ledger, Delta log and checkpoints) nor the
command's own debug log holds them."""

import json
import os
import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable

from conftest import SINCE, run

UNTIL = "2024-01-03T12:30:00Z"
COLUMNS = ["id", "url", "action", "action_label", "actor_id", "actor_name", "change_description",
           "created_at", "ip_address", "source_id", "source_label", "source_type", "extra_json"]


def of_user(row, user):
    return row["actor_id"] == user or (row["source_type"] == "user" and row["source_id"] == user)


def held_for(rows, user):
    held = set()
    for row in rows:
        if row["actor_id"] == user:
            held.update(v for v in (row["actor_name"], row["ip_address"]) if v)
        if row["source_type"] == "user" and row["source_id"] == user and row["source_label"]:
            held.add(row["source_label"])
    held.discard(str(user))
    return held


def plain_rows(root):
    table = ds.dataset(str(root), format="parquet", partitioning="hive").to_table(columns=COLUMNS)
    return table.to_pylist()


@pytest.fixture(scope="module", params=["parquet", "delta"])
def erased(request, simulator, tmp_path_factory):
    """A lake of hourly windows (a compacted day, an open window), before and after erasing the
    busiest human actor; the erase ran with debug logs."""
    dest = tmp_path_factory.mktemp(f"erase-{request.param}")
    for until in ("2024-01-03T12:10:00Z", UNTIL):
        done = run(["export", "--subdomain", "acme", "--dest", str(dest), "--since", SINCE, "--until", until,
                    "--window", "1h", "--base-url", simulator, "--table-format", request.param])
        assert done.returncode == 0, done.stderr
    root = dest / "audit_logs"
    if request.param == "delta":
        before = DeltaTable(str(root)).to_pyarrow_table(columns=COLUMNS).to_pylist()
    else:
        before = plain_rows(root)
    counts = {}
    for row in before:
        if row["actor_id"] and row["actor_id"] > 0 and row["actor_name"]:
            counts[row["actor_id"]] = counts.get(row["actor_id"], 0) + 1
    user = max(counts, key=counts.get)
    done = run(["erase", "--subdomain", "acme", "--dest", str(dest), "--user-id", str(user),
                "--reason", "DPO-42", "--log-level", "debug", "--json"])
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    return request.param, dest, before, user, held_for(before, user), outcome, done.stderr


def assert_erased(rows, before, user, held, reader):
    by_id = {r["id"]: r for r in before}
    assert sorted(r["id"] for r in rows) == sorted(by_id), f"{reader}: the same records, once each"
    for row in rows:
        old = by_id[row["id"]]
        if not of_user(old, user):
            assert row == old, f"{reader}: record {row['id']} of another user changed"
            continue
        for column, value in row.items():
            for h in held:
                assert not (isinstance(value, str) and h in value), \
                    f"{reader}: record {row['id']} keeps a value held for the user in {column}"
        if old["actor_id"] == user:
            assert row["ip_address"] is None, reader
            assert row["actor_name"] in (None, str(user)), reader
        for column in ("id", "url", "action", "action_label", "actor_id", "created_at", "source_id",
                       "source_type"):
            assert row[column] == old[column], (reader, column)


def test_the_erasure_changed_windows_and_recorded_a_ledger_entry(erased):
    fmt, dest, before, user, held, outcome, _ = erased
    assert outcome["ledger_entry"] == 1
    assert outcome["rows"] > 0 and len(outcome["windows"]) > 1
    assert held, "the user had names and addresses"


def test_readers_show_no_trace_and_every_other_record_unchanged(erased):
    fmt, dest, before, user, held, _, _ = erased
    root = dest / "audit_logs"
    if fmt == "delta":
        rows = DeltaTable(str(root)).to_pyarrow_table(columns=COLUMNS).to_pylist()
        assert_erased(rows, before, user, held, "delta-rs")
        frame = pl.read_delta(str(root)).select(COLUMNS)
        assert_erased(frame.to_dicts(), before, user, held, "polars read_delta")
    else:
        assert_erased(plain_rows(root), before, user, held, "pyarrow")
        glob = f"{root}/subdomain=*/created_date=*/*.parquet"
        frame = pl.scan_parquet(glob, hive_partitioning=True).select(COLUMNS).collect()
        assert_erased(frame.to_dicts(), before, user, held, "polars scan_parquet")
        cur = duckdb.connect().cursor()
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM read_parquet('{glob}', hive_partitioning = true)")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        duck_ids = sorted(r["id"] for r in rows)
        assert duck_ids == sorted(r["id"] for r in before)
        for row in rows:
            if of_user(row, user):
                for h in held:
                    assert not any(isinstance(v, str) and h in v for v in row.values()), "duckdb"


def test_every_delta_version_that_still_reads_shows_no_trace(erased):
    fmt, dest, before, user, held, _, _ = erased
    if fmt != "delta":
        pytest.skip("a plain lake has no versions")
    root = str(dest / "audit_logs")
    latest = DeltaTable(root).version()
    readable = 0
    for version in range(latest + 1):
        try:
            rows = DeltaTable(root, version=version).to_pyarrow_table(columns=COLUMNS).to_pylist()
        except Exception:  # a version whose files the erasure purged: it no longer reads
            continue
        readable += 1
        for row in rows:
            if of_user(row, user):
                for h in held:
                    assert not any(isinstance(v, str) and h in v for v in row.values()), version
    assert readable >= 1


def test_duckdb_delta_scan_shows_no_trace(erased):
    fmt, dest, before, user, held, _, _ = erased
    python = os.environ.get("DUCKDB_DELTA_PYTHON")
    if fmt != "delta" or not python:
        pytest.skip("the Delta table only, with DUCKDB_DELTA_PYTHON (make test sets it)")
    script = '''
import json, pathlib, sys
import duckdb, duckdb_ext
extensions = pathlib.Path(list(duckdb_ext.__path__)[0]) / "extensions"
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
con.execute(f"SET extension_directory = '{extensions}'")
con.execute("LOAD delta")
user = int(sys.argv[2])
rows = con.execute("SELECT id, actor_name, ip_address, source_label, change_description, extra_json"
                   " FROM delta_scan(?) WHERE actor_id = ? OR (source_type = 'user' AND source_id = ?)",
                   [sys.argv[1], user, user]).fetchall()
total = con.execute("SELECT count(*) FROM delta_scan(?)", [sys.argv[1]]).fetchall()[0][0]
print(json.dumps({"rows": [[v for v in r] for r in rows], "total": total}))
'''
    done = subprocess.run([python, "-c", script, str(dest / "audit_logs"), str(user)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["total"] == len(before)
    assert out["rows"], "the user's records are still there, erased"
    for row in out["rows"]:
        for h in held:
            assert not any(isinstance(v, str) and h in v for v in row), "duckdb delta_scan"


def test_nothing_else_the_lake_writes_nor_the_debug_log_holds_the_data(erased):
    fmt, dest, before, user, held, _, stderr = erased
    for h in held:
        assert h not in stderr, "the erase's debug log"
    for path in Path(dest).rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        is_data = "created_date=" in str(path) and path.suffix == ".parquet"
        if is_data:
            continue
        for h in held:
            assert h.encode() not in data, f"{path.relative_to(dest)} holds a value held for the user"
