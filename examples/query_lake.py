"""Queries an auditlake lake with DuckDB: what `make demo` shows after exporting.

Usage: python examples/query_lake.py LAKE_DIR
"""

import sys

import duckdb

lake = sys.argv[1] if len(sys.argv) > 1 else "lake"
# The table root, with DuckDB's defaults: the Hive partitions (subdomain, created_date as a DATE, the
# UTC day) are detected from the paths, as in the README's "Querying the lake".
files = f"{lake}/audit_logs/**/*.parquet"
cur = duckdb.connect().cursor()
# created_at is an instant; show it in UTC, whatever the machine's time zone.
cur.execute("SET TimeZone = 'UTC'")

print(f"DuckDB over {files}\n")
cur.execute(f"""
    SELECT subdomain, count(*) AS records, count(DISTINCT id) AS distinct_ids,
           min(created_at) AS first, max(created_at) AS last
    FROM read_parquet('{files}')
    GROUP BY subdomain
""")
for subdomain, records, ids, first, last in cur.fetchall():
    print(f"{subdomain}: {records} records, {ids} distinct ids, {first} .. {last}")

print("\nrecords per day:")
cur.execute(f"""
    SELECT created_date, count(*) AS n, count(DISTINCT actor_id) AS actors
    FROM read_parquet('{files}')
    GROUP BY ALL ORDER BY created_date
""")
for day, n, actors in cur.fetchall():
    print(f"  {day}  {n:>6} records  {actors:>3} actors")

print("\ntop actions:")
cur.execute(f"""
    SELECT action, count(*) AS n
    FROM read_parquet('{files}')
    GROUP BY ALL ORDER BY n DESC LIMIT 5
""")
for action, n in cur.fetchall():
    print(f"  {action:<16} {n}")
