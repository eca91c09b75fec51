"""What a scheduler and a monitor see: the metrics file read by Prometheus' own text parser, the JSON
log stream, and `status --max-age`."""

import json

from prometheus_client.parser import text_string_to_metric_families

from conftest import SINCE, UNTIL, run


def test_the_metrics_file_parses_as_prometheus_text_with_the_runs_values(simulator, tmp_path):
    dest, metrics, summary = tmp_path / "lake", tmp_path / "auditlake.prom", tmp_path / "summary.json"
    done = run(["export", "--subdomain", "acme", "--dest", str(dest), "--since", SINCE, "--until", UNTIL,
                "--window", "1d", "--base-url", simulator, "--metrics-file", str(metrics),
                "--summary-json", str(summary)])
    assert done.returncode == 0, done.stderr
    expected = json.loads(summary.read_text())
    samples = {}
    for family in text_string_to_metric_families(metrics.read_text()):
        assert family.type == "gauge", family
        for sample in family.samples:
            assert sample.labels == {"subdomain": "acme"}, sample
            samples[sample.name] = sample.value
    assert samples["auditlake_last_run_records"] == expected["rows"]
    assert samples["auditlake_last_run_requests"] == expected["requests"]
    assert samples["auditlake_last_run_throttled"] == expected["throttled"]
    assert samples["auditlake_last_run_windows_done"] == expected["windows_done"] == 8
    assert samples["auditlake_last_run_windows_failed"] == 0
    assert samples["auditlake_last_run_exit_code"] == 0
    assert samples["auditlake_last_success_timestamp_seconds"] == samples["auditlake_last_run_timestamp_seconds"]
    # Fresh to the end of the newest committed window: the run's until.
    assert samples["auditlake_fresh_to_timestamp_seconds"] == 1704758400  # 2024-01-09T00:00:00Z
    assert list(tmp_path.glob("*.prom*")) == [metrics], "a temporary file was left beside it"


def test_json_logs_are_one_stream_and_status_pages_on_an_old_lake(simulator, tmp_path):
    dest = tmp_path / "lake"
    done = run(["export", "--subdomain", "acme", "--dest", str(dest), "--since", SINCE, "--until", UNTIL,
                "--window", "1d", "--base-url", simulator, "--log-format", "json"])
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert events and all(e["run_id"] == events[0]["run_id"] and e["subdomain"] == "acme" for e in events)
    assert events[-1]["message"] == "run finished" and events[-1]["summary"]["exit_code"] == 0
    # The lake ends in 2024: older than a day, so a monitor's check fails with exit 8.
    stale = run(["status", "--dest", str(dest), "--subdomain", "acme", "--max-age", "1d"])
    assert stale.returncode == 8, stale.stderr
    fresh_enough = run(["status", "--dest", str(dest), "--subdomain", "acme", "--max-age", "36500d"])
    assert fresh_enough.returncode == 0, fresh_enough.stderr
    missing = run(["status", "--dest", str(tmp_path / "typo"), "--subdomain", "acme"])
    assert missing.returncode == 7 and not (tmp_path / "typo").exists()
