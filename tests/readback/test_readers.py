"""The read-back matrix: every engine the README documents opens the table root with its default
options and agrees with the source on every checked value.

Each reader below opens `<dest>/audit_logs` as the README's "Querying the lake" shows it (the last
tests run the README's snippets themselves). Where a reader's defaults give `created_date` as a string
(pyarrow's dataset and read_table, DataFusion's CREATE EXTERNAL TABLE), the test says so and compares
strings; the typed variants the README documents (an explicit partitioning schema, DataFusion's
table_partition_cols) are readers of their own. Ground truth is `auditlake list`, which does not go
through the lake's code path.
"""

import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from datafusion import SessionContext

from conftest import run

DAY = "2024-01-03"
BIG = 2**53
# The documented columns: everything else a record carries ends up in extra_json.
COLUMNS = ["id", "url", "action", "action_label", "actor_id", "actor_name", "change_description",
           "created_at", "ip_address", "source_id", "source_label", "source_type"]
# A time zone the readers that have one are set to, so that a local-time reading would show.
ELSEWHERE = "America/New_York"


def epoch_ms(text):
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


# ---------------------------------------------------------------------------------------------
# Ground truth and the fixture's hard cases.


@pytest.fixture(scope="module")
def truth(source):
    by_id = {r["id"]: r for r in source}
    longest = max((r for r in source if r.get("change_description")), key=lambda r: len(r["change_description"]))
    extra = next(r for r in source if set(r) - set(COLUMNS))
    nulls = next(r for r in source if r.get("ip_address") is None and r.get("change_description") is None)
    big = sorted(i for i in by_id if i > BIG)
    return {
        "rows": len(source),
        "ids": len(by_id),
        "big": big,
        "all_ms": [epoch_ms(r["created_at"]) for r in source],
        "min_ms": min(epoch_ms(r["created_at"]) for r in source),
        "max_ms": max(epoch_ms(r["created_at"]) for r in source),
        "days": {d: sum(1 for r in source if r["created_at"].startswith(d))
                 for d in {r["created_at"][:10] for r in source}},
        "probe": {i: by_id[i] for i in [big[0], longest["id"], extra["id"], nulls["id"]]},
        "longest": longest,
    }


def test_the_lake_holds_the_hard_cases(lake, truth):
    dest, summary = lake
    assert summary["rows"] == truth["rows"]
    assert any(int(float(i)) != i for i in truth["big"]), "an id above 2^53 that no f64 can hold"
    text = truth["longest"]["change_description"]
    assert len(text) > 1000 and any(ord(c) > 0xFFFF for c in text), "long text with astral-plane characters"
    assert len(truth["days"]) >= 5, "several days, so that a day's filter has files to skip"
    days = sorted(p.name for p in (dest / "audit_logs" / "subdomain=acme").iterdir())
    assert days == [f"created_date={d}" for d in sorted(truth["days"])]
    assert not list(dest.glob("audit_logs/**/*.json")), "the table root holds Parquet only"


def extras(record):
    """What the lake keeps in extra_json for a source record (None when it has no unknown fields)."""
    unknown = {k: v for k, v in record.items() if k not in COLUMNS}
    return unknown or None


# ---------------------------------------------------------------------------------------------
# The readers. Each answers the same questions; the tests compare the answers with the truth.


class Sql:
    """A reader queried with SQL over a table named `t`."""

    day_literal = "DATE '{}'"

    def stats(self):
        (rows, ids, lo, hi, partitioned), = self.q(f"""
            SELECT count(*), count(DISTINCT id), {self.ms('min(created_at)')}, {self.ms('max(created_at)')},
                   sum(CASE WHEN subdomain = 'acme' AND created_date IS NOT NULL THEN 1 ELSE 0 END)
            FROM t""")
        return rows, ids, lo, hi, partitioned

    def ids_above(self, n):
        return [r[0] for r in self.q(f"SELECT id FROM t WHERE id > {n} ORDER BY id")]

    def records(self, ids):
        rows = self.q(f"""SELECT id, change_description, extra_json, ip_address, action_label FROM t
                          WHERE id IN ({', '.join(map(str, ids))})""")
        return {r[0]: dict(zip(["change_description", "extra_json", "ip_address", "action_label"], r[1:]))
                for r in rows}

    def day(self, day):
        (n, dates, lo, hi), = self.q(f"""
            SELECT count(*), count(DISTINCT created_date), {self.ms('min(created_at)')}, {self.ms('max(created_at)')}
            FROM t WHERE created_date = {self.day_literal.format(day)}""")
        return n, dates, lo, hi


class DuckDB(Sql):
    # Defaults: hive partitioning is detected from the paths; created_date is a DATE, subdomain VARCHAR.
    column_types = {"id": "BIGINT", "created_at": "TIMESTAMP WITH TIME ZONE", "subdomain": "VARCHAR",
                    "created_date": "DATE"}

    def __init__(self, root):
        self.con = duckdb.connect()
        # An analyst outside UTC: TIMESTAMPTZ values display in this zone, the instants must not move.
        self.con.sql(f"SET TimeZone = '{ELSEWHERE}'")
        self.source = f"read_parquet('{root}/**/*.parquet')"
        self.con.sql(f"CREATE VIEW t AS SELECT * FROM {self.source}")

    def q(self, sql):
        return self.con.sql(sql).fetchall()

    def ms(self, expr):
        return f"epoch_ms({expr})"

    def types(self):
        return {name: kind for name, kind, *_ in self.q("DESCRIBE t")}

    def files(self, day):
        (_, plan), = self.q(f"EXPLAIN ANALYZE SELECT id FROM {self.source} WHERE created_date = DATE '{day}'")
        return int(re.search(r"Total Files Read: (\d+)", plan).group(1))


class DataFusionSql(Sql):
    # Defaults: CREATE EXTERNAL TABLE infers both partitions, as dictionary-encoded strings; a DATE
    # literal still compares (DataFusion coerces), and so does a string.
    column_types = {"id": pa.int64(), "created_at": pa.timestamp("ms", tz="UTC"),
                    "subdomain": pa.dictionary(pa.uint16(), pa.string()),
                    "created_date": pa.dictionary(pa.uint16(), pa.string())}
    day_literal = "'{}'"

    def __init__(self, root):
        self.ctx = SessionContext()
        self.ctx.sql(f"CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{root}'")

    def q(self, sql):
        return [tuple(row.values()) for row in self.ctx.sql(sql).to_pylist()]

    def ms(self, expr):
        return f"CAST(date_part('epoch', {expr}) * 1000 AS BIGINT)"

    def types(self):
        return {f.name: f.type for f in self.ctx.table("t").schema()}

    def files(self, day):
        plan = "\n".join(self.q(f"EXPLAIN SELECT id FROM t WHERE created_date = '{day}'")[-1][1:])
        return re.findall(r"[^\[\], ]+\.parquet", plan)


class DataFusionTyped(DataFusionSql):
    # register_parquet with the partition columns spelled out (its defaults leave them out; see
    # test_datafusion_register_parquet_with_defaults_leaves_the_partitions_out).
    column_types = {"id": pa.int64(), "created_at": pa.timestamp("ms", tz="UTC"), "subdomain": pa.string(),
                    "created_date": pa.date32()}
    day_literal = "DATE '{}'"

    def __init__(self, root):
        self.ctx = SessionContext()
        self.ctx.register_parquet("t", root, table_partition_cols=[("subdomain", pa.string()),
                                                                   ("created_date", pa.date32())])


class Spark(Sql):
    # Defaults: partition discovery infers created_date as date, subdomain as string; timestamps come
    # back to Python as naive datetimes in the session time zone, so instants are compared as epoch ms.
    column_types = {"id": "bigint", "created_at": "timestamp", "subdomain": "string", "created_date": "date"}

    def __init__(self, root, spark):
        assert spark.conf.get("spark.sql.session.timeZone") == ELSEWHERE
        self.spark = spark
        self.df = spark.read.parquet(root)
        self.df.createOrReplaceTempView("t")

    def q(self, sql):
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def ms(self, expr):
        return f"unix_millis({expr})"

    def types(self):
        return dict(self.df.dtypes)

    def files(self, day):
        from pyspark.sql import functions as F

        filtered = self.df.where(F.col("created_date") == dt.date.fromisoformat(day)).select("id")
        filtered.collect()
        plan = filtered._jdf.queryExecution().executedPlan()
        assert "PartitionFilters: [isnotnull(created_date" in plan.toString()
        leaves = plan.collectLeaves().iterator()
        scans = []
        while leaves.hasNext():
            leaf = leaves.next()
            if leaf.getClass().getSimpleName() == "FileSourceScanExec":
                scans.append(int(leaf.metrics().get("numFiles").get().value()))
        assert len(scans) == 1, plan.toString()
        return scans[0]


class Arrow:
    """A reader whose answers are computed with pyarrow.compute over an Arrow table."""

    def table(self, columns=None, filter=None):
        raise NotImplementedError

    def stats(self):
        t = self.table(["id", "created_at", "subdomain", "created_date"])
        ms = pc.cast(t["created_at"], pa.int64())  # ms: test_columns_have_the_documented_types
        partitioned = pc.sum(pc.and_(pc.equal(pc.cast(t["subdomain"], pa.string()), "acme"),
                                     pc.is_valid(t["created_date"]))).as_py()
        return t.num_rows, pc.count_distinct(t["id"]).as_py(), pc.min(ms).as_py(), pc.max(ms).as_py(), partitioned

    def ids_above(self, n):
        return sorted(self.table(["id"], ds.field("id") > n)["id"].to_pylist())

    def records(self, ids):
        t = self.table(["id", "change_description", "extra_json", "ip_address", "action_label"],
                       ds.field("id").isin(ids))
        return {r.pop("id"): r for r in t.to_pylist()}

    def day(self, day):
        t = self.table(["created_at", "created_date"], ds.field("created_date") == self.day_value(day))
        ms = pc.cast(t["created_at"], pa.int64())
        return t.num_rows, len(set(t["created_date"].to_pylist())), pc.min(ms).as_py(), pc.max(ms).as_py()

    def types(self):
        return {f.name: f.type for f in self.schema}


class ArrowDataset(Arrow):
    # Defaults with partitioning="hive": both partitions are inferred as strings, so a day is compared
    # as the string "YYYY-MM-DD".
    column_types = {"id": pa.int64(), "created_at": pa.timestamp("ms", tz="UTC"), "subdomain": pa.string(),
                    "created_date": pa.string()}

    def __init__(self, root):
        self.dataset = ds.dataset(root, partitioning="hive")
        self.schema = self.dataset.schema

    def day_value(self, day):
        return day

    def table(self, columns=None, filter=None):
        return self.dataset.to_table(columns=columns, filter=filter)

    def files(self, day):
        return [f.path for f in self.dataset.get_fragments(filter=ds.field("created_date") == self.day_value(day))]


class ArrowDatasetTyped(ArrowDataset):
    # The README's variant: an explicit partitioning schema makes created_date a date32.
    column_types = {"id": pa.int64(), "created_at": pa.timestamp("ms", tz="UTC"), "subdomain": pa.string(),
                    "created_date": pa.date32()}

    def __init__(self, root):
        partitioning = ds.partitioning(pa.schema([("subdomain", pa.string()), ("created_date", pa.date32())]),
                                       flavor="hive")
        self.dataset = ds.dataset(root, format="parquet", partitioning=partitioning)
        self.schema = self.dataset.schema

    def day_value(self, day):
        return dt.date.fromisoformat(day)


class ArrowReadTable(Arrow):
    # Defaults of pq.read_table on a directory: hive partitions are discovered and dictionary-encoded
    # strings (dictionary<values=string, indices=int32>); a day is compared as a string.
    column_types = {"id": pa.int64(), "created_at": pa.timestamp("ms", tz="UTC"),
                    "subdomain": pa.dictionary(pa.int32(), pa.string()),
                    "created_date": pa.dictionary(pa.int32(), pa.string())}

    def __init__(self, root):
        self.root = root
        self.schema = pq.read_table(root, filters=ds.field("id") < 0).schema

    def day_value(self, day):
        return day

    def table(self, columns=None, filter=None):
        return pq.read_table(self.root, columns=columns, filters=filter)


class Polars:
    # Defaults of scan_parquet on a directory: hive partitions are detected; created_date is a Date,
    # subdomain a String; created_at Datetime(ms, UTC).
    column_types = {"id": pl.Int64, "created_at": pl.Datetime("ms", "UTC"), "subdomain": pl.String,
                    "created_date": pl.Date}

    def __init__(self, root):
        self.lake = pl.scan_parquet(root)

    def types(self):
        return dict(self.lake.collect_schema())

    def stats(self):
        ms = pl.col("created_at").dt.epoch("ms")
        return self.lake.select(
            pl.len(), pl.col("id").n_unique(), ms.min().alias("lo"), ms.max().alias("hi"),
            ((pl.col("subdomain") == "acme") & pl.col("created_date").is_not_null()).sum(),
        ).collect().row(0)

    def ids_above(self, n):
        return self.lake.filter(pl.col("id") > n).select("id").sort("id").collect()["id"].to_list()

    def records(self, ids):
        frame = self.lake.filter(pl.col("id").is_in(ids)).select(
            "id", "change_description", "extra_json", "ip_address", "action_label").collect()
        return {r.pop("id"): r for r in frame.to_dicts()}

    def _day(self, day):
        return self.lake.filter(pl.col("created_date") == dt.date.fromisoformat(day))

    def day(self, day):
        ms = pl.col("created_at").dt.epoch("ms")
        return self._day(day).select(pl.len(), pl.col("created_date").n_unique(), ms.min().alias("lo"),
                                     ms.max().alias("hi")).collect().row(0)

    def files(self, day):
        plan = self._day(day).select("id").explain()
        scan = re.search(r"Parquet SCAN \[([^\]]*)\]", plan).group(1)
        assert "other source" not in scan, plan
        return [p.strip() for p in scan.split(",")]


READERS = ["duckdb", "pyarrow_read_table", "pyarrow_dataset", "pyarrow_dataset_typed", "polars",
           "datafusion_external_table", "datafusion_register_parquet_typed", "spark"]
# Readers that report which files a created_date filter reads (pruning).
PRUNING = ["duckdb", "pyarrow_dataset", "pyarrow_dataset_typed", "polars", "datafusion_external_table",
           "datafusion_register_parquet_typed", "spark"]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("auditlake-readback")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "1")
               # The JVM's (and so the session's) time zone away from UTC: instants must not move.
               .config("spark.driver.extraJavaOptions", f"-Dlog4j2.level=ERROR -Duser.timezone={ELSEWHERE}")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def readers():
    return {}


@pytest.fixture
def reader(request, lake, readers):
    """The reader named by the test's parameter, opened once per module over the table root."""
    name = request.param
    if name not in readers:
        root = lake[0] / "audit_logs"
        readers[name] = {
            "duckdb": lambda: DuckDB(root),
            "pyarrow_read_table": lambda: ArrowReadTable(root),
            "pyarrow_dataset": lambda: ArrowDataset(root),
            "pyarrow_dataset_typed": lambda: ArrowDatasetTyped(root),
            "polars": lambda: Polars(root),
            "datafusion_external_table": lambda: DataFusionSql(root),
            "datafusion_register_parquet_typed": lambda: DataFusionTyped(root),
            "spark": lambda: Spark(str(root), request.getfixturevalue("spark")),
        }[name]()
    return readers[name]


@pytest.mark.parametrize("reader", READERS, indirect=True)
def test_every_row_and_id_is_read_once_with_both_partitions(reader, truth):
    rows, ids, _, _, partitioned = reader.stats()
    assert (rows, ids, partitioned) == (truth["rows"], truth["ids"], truth["rows"])


@pytest.mark.parametrize("reader", READERS, indirect=True)
def test_created_at_is_the_same_utc_instant(reader, truth):
    _, _, lo, hi, _ = reader.stats()
    assert (lo, hi) == (truth["min_ms"], truth["max_ms"])


@pytest.mark.parametrize("reader", READERS, indirect=True)
def test_ids_above_2_53_are_exact(reader, truth):
    assert reader.ids_above(BIG) == truth["big"]


@pytest.mark.parametrize("reader", READERS, indirect=True)
def test_long_unicode_text_unknown_fields_and_nulls_read_back_intact(reader, truth):
    got = reader.records(list(truth["probe"]))
    assert set(got) == set(truth["probe"])
    for i, record in truth["probe"].items():
        row = got[i]
        assert row["change_description"] == record.get("change_description"), i
        assert row["ip_address"] == record.get("ip_address"), i
        assert row["action_label"] == record.get("action_label"), i
        assert (json.loads(row["extra_json"]) if row["extra_json"] is not None else None) == extras(record), i


@pytest.mark.parametrize("reader", READERS, indirect=True)
def test_columns_have_the_documented_types(reader):
    types = reader.types()
    assert {k: types[k] for k in reader.column_types} == reader.column_types


@pytest.mark.parametrize("reader", READERS, indirect=True)
def test_a_created_date_filter_returns_exactly_that_days_rows(reader, truth):
    n, dates, lo, hi = reader.day(DAY)
    start = epoch_ms(f"{DAY}T00:00:00Z")
    assert (n, dates) == (truth["days"][DAY], 1)
    assert start <= lo <= hi < start + 86_400_000, "created_date is the UTC day of created_at"


@pytest.mark.parametrize("reader", PRUNING, indirect=True)
def test_a_created_date_filter_reads_only_that_days_files(reader, lake):
    expected = sorted(str(p) for p in lake[0].glob(f"audit_logs/subdomain=*/created_date={DAY}/*.parquet"))
    assert expected
    files = reader.files(DAY)
    if isinstance(files, int):  # DuckDB and Spark report how many files they read
        assert files == len(expected)
    else:
        assert sorted("/" + f.removeprefix("file://").lstrip("/") for f in files) == expected


@pytest.mark.parametrize("reader", ["duckdb", "spark"], indirect=True)
def test_created_at_displays_in_the_session_time_zone_as_the_readme_warns(reader, truth):
    (first, text), = reader.q("SELECT min(created_at), CAST(min(created_at) AS STRING) FROM t")
    instant = dt.datetime.fromtimestamp(truth["min_ms"] / 1000, dt.timezone.utc)
    local = instant.astimezone(ZoneInfo(ELSEWHERE))
    if isinstance(reader, Spark):
        # As text, the session time zone; to Python, a naive datetime in the Python process's zone.
        assert text == local.strftime("%Y-%m-%d %H:%M:%S")
        assert first == dt.datetime.fromtimestamp(truth["min_ms"] / 1000)
    else:
        assert text == local.strftime("%Y-%m-%d %H:%M:%S%z")[:-2]  # 2023-12-31 19:00:00-05
        assert first == instant and first.utcoffset() == local.utcoffset(), "DuckDB: aware, in SET TimeZone"


def test_datafusion_register_parquet_with_defaults_leaves_the_partitions_out(lake, truth):
    # A finding the README states: DataFusion's register_parquet and read_parquet infer no partition
    # columns unless table_partition_cols names them (CREATE EXTERNAL TABLE does infer them).
    ctx = SessionContext()
    root = lake[0] / "audit_logs"
    ctx.register_parquet("t", root)
    names = set(ctx.table("t").schema().names)
    assert {"id", "created_at"} <= names and not {"subdomain", "created_date"} & names
    assert ctx.sql("SELECT count(*) AS n FROM t").to_pylist() == [{"n": truth["rows"]}]
    assert not {"subdomain", "created_date"} & set(ctx.read_parquet(root).schema().names)


def test_polars_with_a_glob_and_defaults_leaves_the_partitions_out(lake, truth):
    # A finding the README states: hive partitioning is detected for a directory, not for a glob.
    lake_frame = pl.scan_parquet(f"{lake[0]}/audit_logs/**/*.parquet")
    assert not {"subdomain", "created_date"} & set(lake_frame.collect_schema().names())
    assert lake_frame.select(pl.len()).collect().item() == truth["rows"]


# ---------------------------------------------------------------------------------------------
# The README's "Querying the lake" snippets, run as written against this lake.

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippets():
    text = README.read_text()
    section = text.split("\n## Querying the lake\n", 1)[1].split("\n## ", 1)[0]
    # The Delta table's own snippet reads a Delta lake (tests/readback/test_delta.py runs it).
    section = section.split("\n### A Delta table", 1)[0]
    return re.findall(r"```(sql|python)\n(.*?)```", section, re.S)


def snippet_name(lang, code):
    """The reader a snippet is for, so that a failure names it."""
    if lang == "sql":
        return "duckdb"
    return next(m for m in ["pyspark", "datafusion", "polars", "pyarrow"] if re.search(rf"^(import|from) {m}\b", code, re.M))


def test_the_readme_has_a_snippet_per_reader():
    snippets = readme_snippets()
    assert all("lake/audit_logs" in code for _, code in snippets), "every snippet reads the placeholder path"
    assert [lang for lang, _ in snippets].count("sql") == 1, "one SQL snippet, DuckDB's"
    imports = "\n".join(code for lang, code in snippets if lang == "python")
    for module in ["pyarrow.dataset", "polars", "datafusion", "pyspark"]:
        assert re.search(rf"^(import|from) {re.escape(module)}\b", imports, re.M), module


@pytest.mark.parametrize("lang, code", readme_snippets(), ids=[snippet_name(*s) for s in readme_snippets()])
def test_the_readmes_snippet_counts_the_days_records(lang, code, lake, truth, request):
    code = code.replace("lake/audit_logs", str(lake[0] / "audit_logs"))
    expected = truth["days"][DAY]
    if lang == "sql":
        assert duckdb.connect().sql(code).fetchall() == [(expected,)]
        return
    if "pyspark" in code:
        request.getfixturevalue("spark")  # getOrCreate() in the snippet returns this module's session
    scope = {}
    exec(compile(code, f"README.md ({snippet_name(lang, code)})", "exec"), scope)
    assert scope["records"] == expected


# `auditlake ddl`: the SQL it prints is run by the engines here, not only read.

def ddl(dest, engine, *extra):
    printed = run(["ddl", "--dest", str(dest), "--engine", engine, *extra])
    assert printed.returncode == 0, printed.stderr
    return printed.stdout


def statements(sql):
    """The printed statements, split where a line ends in `;` (no comment line holds one)."""
    return [s.strip() for s in sql.split(";\n")
            if any(line.strip() and not line.strip().startswith("--") for line in s.splitlines())]


def test_duckdbs_ddl_makes_a_view_with_typed_partitions_over_every_row(lake, truth):
    dest, _ = lake
    con = duckdb.connect()
    con.execute(ddl(dest, "duckdb"))
    cur = con.cursor()
    cur.execute("SELECT count(*), count(DISTINCT id), min(created_date), typeof(min(created_date)) FROM audit_logs")
    rows, ids, first, kind = cur.fetchall()[0]
    assert (rows, ids) == (truth["rows"], truth["ids"])
    assert (str(first), kind) == (min(truth["days"]), "DATE")


def test_sparks_ddl_makes_a_table_that_counts_every_row(lake, truth, spark):
    dest, _ = lake
    for statement in statements(ddl(dest, "spark", "--table", "ddl_check.audit_logs")):
        spark.sql(statement)
    counted = spark.sql("SELECT count(*), count(DISTINCT id) FROM ddl_check.audit_logs").first()
    assert tuple(counted) == (truth["rows"], truth["ids"])
    day = spark.sql(f"SELECT count(*) FROM ddl_check.audit_logs WHERE created_date = DATE '{DAY}'").first()[0]
    assert day == truth["days"][DAY]
    spark.sql("DROP TABLE ddl_check.audit_logs")


def test_a_created_at_range_skips_the_row_groups_outside_it_by_their_statistics(lake, truth):
    """Parquet written for readers: min/max statistics on created_at let a reader skip what a
    time range excludes without reading it (pyarrow's row-group pruning, as engines do)."""
    dest, _ = lake
    dataset = ds.dataset(str(dest / "audit_logs"), format="parquet", partitioning="hive")
    start = dt.datetime.fromisoformat(f"{DAY}T06:00:00+00:00")
    hour = (ds.field("created_at") >= pa.scalar(start, pa.timestamp("ms", tz="UTC"))) & (
        ds.field("created_at") < pa.scalar(start + dt.timedelta(hours=1), pa.timestamp("ms", tz="UTC")))
    groups = [g for f in dataset.get_fragments() for g in f.split_by_row_group()]
    kept = [g for f in dataset.get_fragments() for g in f.split_by_row_group(filter=hour)]
    assert 1 <= len(kept) < len(groups), (len(kept), len(groups))
    rows = dataset.to_table(filter=hour).num_rows
    expected = sum(1 for ms in truth["all_ms"] if start.timestamp() * 1000 <= ms < (start.timestamp() + 3600) * 1000)
    assert rows == expected > 0
