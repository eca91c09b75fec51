"""The lake read back by real engines, DuckDB and pyarrow, and compared with the source."""

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds


def glob(dest):
    return f"{dest}/audit_logs/subdomain=*/created_date=*/*.parquet"


def test_duckdb_reads_every_record_once_with_typed_columns(lake, source):
    dest, summary = lake
    con = duckdb.connect()
    cur = con.cursor()
    cur.execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{glob(dest)}', hive_partitioning = true)")
    rows, ids = cur.fetchall()[0]
    assert rows == ids == len(source) == summary["rows"]
    cur.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob(dest)}', hive_partitioning = true)")
    types = {name: kind for name, kind, *_ in cur.fetchall()}
    assert types["id"] == "BIGINT"
    assert types["actor_id"] == "BIGINT"
    assert types["source_id"] == "BIGINT"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    for name in ["url", "action", "action_label", "actor_name", "change_description", "ip_address",
                 "source_label", "source_type", "extra_json"]:
        assert types[name] == "VARCHAR", (name, types[name])
    assert types["subdomain"] == "VARCHAR"
    assert types["created_date"] == "DATE"


def test_duckdb_prunes_by_day_and_ids_above_2_53_are_exact(lake, source):
    dest, _ = lake
    cur = duckdb.connect().cursor()
    day = "2024-01-03"
    cur.execute(
        f"SELECT count(*) FROM read_parquet('{glob(dest)}', hive_partitioning = true) WHERE created_date = DATE '{day}'"
    )
    assert cur.fetchall()[0][0] == sum(1 for r in source if r["created_at"].startswith(day))
    big = sorted(r["id"] for r in source if r["id"] > 2**53)
    assert big, "the simulated account has ids above 2^53"
    cur.execute(
        f"SELECT id FROM read_parquet('{glob(dest)}', hive_partitioning = true) WHERE id > 9007199254740992 ORDER BY id"
    )
    assert [r[0] for r in cur.fetchall()] == big


def test_pyarrow_reads_every_field_intact(lake, source):
    dest, _ = lake
    dataset = ds.dataset(str(dest / "audit_logs"), format="parquet", partitioning="hive")
    table = dataset.to_table()
    schema = table.schema
    assert schema.field("id").type == pa.int64()
    assert schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("change_description").type == pa.string()
    by_id = {}
    for row in table.to_pylist():
        rebuilt = {k: v for k, v in row.items()
                   if v is not None and k not in ("extra_json", "subdomain", "created_date")}
        rebuilt["created_at"] = row["created_at"].astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if row["extra_json"] is not None:
            rebuilt.update(json.loads(row["extra_json"]))
        assert row["created_date"] == row["created_at"].date() or str(row["created_date"]) == rebuilt["created_at"][:10]
        assert row["subdomain"] == "acme"
        assert rebuilt["id"] not in by_id, f"duplicate id {rebuilt['id']}"
        by_id[rebuilt["id"]] = rebuilt
    assert len(by_id) == len(source)
    for record in source:
        expected = {k: v for k, v in record.items() if v is not None}
        assert by_id[record["id"]] == expected
    assert any("extra_json" in r and r["extra_json"] for r in table.select(["extra_json"]).to_pylist())


def test_rows_are_sorted_within_each_file(lake):
    dest, _ = lake
    import pyarrow.parquet as pq
    for path in sorted(dest.glob("audit_logs/subdomain=*/created_date=*/*.parquet")):
        t = pq.read_table(path, columns=["created_at", "id"])
        keys = list(zip(t.column("created_at").to_pylist(), t.column("id").to_pylist()))
        assert keys == sorted(keys), path
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert meta.row_group(0).column(0).statistics is not None
