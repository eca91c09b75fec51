"""A lake exported into a bucket on a real S3-compatible server (moto, started by tests/with-moto.sh),
read back with pyarrow's S3 filesystem and compared record by record with the source."""

import datetime as dt
import json
import os
import urllib.request
import uuid
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from conftest import SINCE, UNTIL, run

ENDPOINT = os.environ.get("AUDITLAKE_TEST_S3_ENDPOINT")


@pytest.fixture(scope="module")
def s3_lake(simulator):
    assert ENDPOINT, "AUDITLAKE_TEST_S3_ENDPOINT is not set: run through `make test` (tests/with-moto.sh)"
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    urllib.request.urlopen(urllib.request.Request(f"{ENDPOINT}/{bucket}", method="PUT")).read()
    done = run(["export", "--subdomain", "acme", "--dest", f"s3://{bucket}/audit", "--since", SINCE,
                "--until", UNTIL, "--base-url", simulator],
               env_extra={"AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": "us-east-1",
                          "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    assert done.returncode == 0, done.stderr
    host = urlparse(ENDPOINT)
    fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                           endpoint_override=host.netloc, scheme=host.scheme)
    return fs, f"{bucket}/audit"


def test_pyarrow_reads_the_bucket_exactly(s3_lake, source):
    fs, root = s3_lake
    dataset = ds.dataset(f"{root}/audit_logs", filesystem=fs, format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("actor_id").type == pa.int64()
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    rows = table.to_pylist()
    assert len(rows) == len(source)
    assert len({r["id"] for r in rows}) == len(rows)
    by_id = {}
    for row in rows:
        rebuilt = {k: v for k, v in row.items()
                   if v is not None and k not in ("extra_json", "subdomain", "created_date")}
        rebuilt["created_at"] = row["created_at"].astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if row["extra_json"] is not None:
            rebuilt.update(json.loads(row["extra_json"]))
        by_id[rebuilt["id"]] = rebuilt
    for record in source:
        assert by_id[record["id"]] == {k: v for k, v in record.items() if v is not None}
    markers = fs.get_file_info(pafs.FileSelector(f"{root}/_auditlake/subdomain=acme/windows"))
    assert len(markers) == 8


def test_verify_integrity_hashes_the_bucket_and_walks_its_chain(s3_lake):
    fs, root = s3_lake
    bucket, prefix = root.split("/", 1)
    done = run(["verify", "--dest", f"s3://{bucket}/{prefix}", "--subdomain", "acme", "--integrity"],
               env_extra={"AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": "us-east-1",
                          "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "digest chain: 8 links walked" in done.stdout, done.stdout


def test_athena_and_trino_ddl_for_the_bucket_parse_and_project_every_partition(s3_lake):
    import sqlglot

    fs, root = s3_lake
    env = {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    before = sorted(info.path for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)))
    athena = run(["ddl", "--dest", f"s3://{root}", "--engine", "athena"], env_extra=env)
    assert athena.returncode == 0, athena.stderr
    [create] = sqlglot.parse(athena.stdout, read="athena")
    assert isinstance(create, sqlglot.exp.Create)
    sql = athena.stdout
    # Partition projection: no statement but the CREATE, so no MSCK REPAIR, ever.
    code = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    assert not any("MSCK" in line.upper() for line in code)
    for needed in ["'projection.enabled' = 'true'",
                   f"'s3://{root}/audit_logs/subdomain=${{subdomain}}/created_date=${{created_date}}/'",
                   f"{SINCE},NOW", "'acme'", f"LOCATION 's3://{root}/audit_logs/'"]:
        assert needed in sql, f"{needed} not in\n{sql}"
    trino = run(["ddl", "--dest", f"s3://{root}", "--engine", "trino"], env_extra=env)
    assert trino.returncode == 0, trino.stderr
    parsed = sqlglot.parse(trino.stdout, read="trino")
    assert isinstance(parsed[0], sqlglot.exp.Create), parsed
    assert f"external_location = 's3://{root}/audit_logs/'" in trino.stdout
    # ddl only reads.
    after = sorted(info.path for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)))
    assert after == before


def test_every_put_carried_its_sha256_and_the_marker_records_the_same(simulator):
    """The store checks every upload (x-amz-checksum-sha256 on PUT, which an Object Lock bucket
    requires): moto's request recorder shows each file's PUT with its SHA-256, and it is the one
    the file's marker recorded."""
    import base64

    def moto(action):
        request = urllib.request.Request(f"{ENDPOINT}/moto-api/recorder/{action}", method="POST")
        return urllib.request.urlopen(request).read()

    bucket = f"sums-{uuid.uuid4().hex[:12]}"
    urllib.request.urlopen(urllib.request.Request(f"{ENDPOINT}/{bucket}", method="PUT")).read()
    moto("reset-recording")
    moto("start-recording")
    try:
        done = run(["export", "--subdomain", "acme", "--dest", f"s3://{bucket}/audit", "--since", SINCE,
                    "--until", "2024-01-03", "--base-url", simulator],
                   env_extra={"AWS_ENDPOINT_URL": ENDPOINT, "AWS_REGION": "us-east-1",
                              "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        assert done.returncode == 0, done.stderr
    finally:
        moto("stop-recording")
    recording = urllib.request.urlopen(f"{ENDPOINT}/moto-api/recorder/download-recording").read().decode()
    sent = {}
    for line in recording.splitlines():
        request = json.loads(line)
        path = unquote(urlparse(request["url"]).path)
        if request["method"] == "PUT" and path.endswith(".parquet"):
            headers = {k.lower(): v for k, v in request["headers"].items()}
            sent[path.split(f"/{bucket}/audit/", 1)[1]] = headers.get("x-amz-checksum-sha256")
    host = urlparse(ENDPOINT)
    fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                           endpoint_override=host.netloc, scheme=host.scheme)
    markers = fs.get_file_info(pafs.FileSelector(f"{bucket}/audit/_auditlake/subdomain=acme/windows"))
    files = []
    for marker in markers:
        with fs.open_input_stream(marker.path) as f:
            files.extend(json.loads(f.read())["files"])
    assert len(files) >= 2
    for file in files:
        header = sent.get(file["path"])
        assert header, f"{file['path']}: its PUT carried no x-amz-checksum-sha256"
        assert base64.b64decode(header).hex() == file["sha256"], file["path"]
