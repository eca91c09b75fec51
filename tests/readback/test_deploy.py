"""The deployment files a user copies: each parses, and every auditlake command line in them (and in
README's "Running on a schedule") is accepted by the binary with --check-config, with the
environment the file provides and dummy secrets in temporary files. Nothing is contacted or written.
"""

import ast
import configparser
import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import yaml

from conftest import BIN

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DUMMY_SECRET = "dummy-SECRET-value-5150"
COMMANDS = {"export", "status", "verify", "repair", "show", "list", "request-export", "ddl"}
REDIRECTIONS = re.compile(r"^(\d?>>?|\d?>&\d|\||&&|;)")


def accepted(args, env, tmp_path):
    """Runs `auditlake ARGS --check-config` with `env` only (a `*_FILE` variable gets a temporary
    file holding a dummy secret) and asserts it is accepted."""
    assert args and args[0] in COMMANDS, args
    run_env = {"PATH": os.environ.get("PATH", "")}
    for name, value in env.items():
        if name.endswith("_FILE"):
            secret = tmp_path / f"{name.lower()}-{len(list(tmp_path.iterdir()))}"
            secret.write_text(DUMMY_SECRET + "\n")
            value = str(secret)
        run_env[name] = value
    # Relative paths (`./lake`) resolve in the test's folder, where a `lake` folder exists.
    (tmp_path / "lake").mkdir(exist_ok=True)
    done = subprocess.run([str(Path(BIN).resolve()), *args, "--check-config"], env=run_env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{args}: {output}"
    assert f"{args[0]} would" in done.stdout, output
    assert "nothing contacted, nothing written" in done.stdout, output
    assert DUMMY_SECRET not in output
    return done.stdout


def command_tokens(line):
    """The tokens of a shell command line up to its first redirection, pipe or list operator."""
    tokens = []
    for token in shlex.split(line, comments=True):
        if REDIRECTIONS.match(token):
            break
        tokens.append(token)
    return tokens


def test_the_kubernetes_cronjob_forbids_overlap_uses_irsa_and_its_command_is_accepted(tmp_path):
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "kubernetes/cronjob.yaml").read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"ServiceAccount", "CronJob"}
    cron, account = by_kind["CronJob"], by_kind["ServiceAccount"]
    assert cron["apiVersion"] == "batch/v1"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    (container,) = pod["containers"]
    assert "command" not in container, "the image's entrypoint is auditlake"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ZENDESK_OAUTH_CLIENT_SECRET"} & set(env)
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    secret_mounts = [m["mountPath"].rstrip("/") + "/" for m in container["volumeMounts"]
                     if m["name"] in secret_volumes]
    files = {name: path for name, path in env.items() if name.endswith("_FILE")}
    assert "ZENDESK_OAUTH_CLIENT_SECRET_FILE" in files
    for name, path in files.items():
        assert any(path.startswith(m) for m in secret_mounts), f"{name}={path} is not in a mounted secret"
    args = container["args"]
    assert all(isinstance(a, str) for a in args), args
    assert args[args.index("--summary-json") + 1] == "/dev/stdout"
    assert args[args.index("--dest") + 1].startswith("s3://")
    accepted(args, env, tmp_path)


def install_stand_ins(tree, stand_ins, monkeypatch):
    """Airflow itself is not installed: the modules the DAG file imports from, made of stand-ins
    that record what it builds (for the first of its try/except imports)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("airflow"):
            parts = node.module.split(".")
            for i in range(1, len(parts) + 1):
                monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
            for alias in node.names:
                setattr(sys.modules[node.module], alias.name, stand_ins[alias.name])


def test_the_airflow_dag_has_one_accepted_task_per_subdomain(tmp_path, monkeypatch):
    path = EXAMPLES / "airflow/auditlake_dag.py"
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    stdlib = {"datetime"}
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert all(m.split(".")[0] in stdlib | {"airflow"} for m in imported), imported
    # Airflow itself is not installed: stand-ins for the names the DAG imports record what it builds.
    dags, tasks = [], []

    class DAG:
        def __init__(self, **kwargs):
            dags.append(kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class BashOperator:
        def __init__(self, **kwargs):
            tasks.append(kwargs)

    stand_ins = {"DAG": DAG, "BashOperator": BashOperator}
    install_stand_ins(tree, stand_ins, monkeypatch)
    namespace = {"__name__": "auditlake_dag"}
    exec(compile(tree, str(path), "exec"), namespace)
    (dag,) = dags
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    subdomains = namespace["SUBDOMAINS"]
    assert len(subdomains) >= 2 and len(tasks) == len(subdomains)
    assert len({t["task_id"] for t in tasks}) == len(tasks)
    for subdomain, task in zip(subdomains, tasks):
        tokens = command_tokens(task["bash_command"])
        assert tokens[0] == "auditlake", tokens
        assert tokens[tokens.index("--subdomain") + 1] == subdomain
        assert task["append_env"] is True
        accepted(tokens[1:], task["env"], tmp_path)


def unit(path):
    parser = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_the_systemd_service_is_hardened_gets_its_secret_as_a_credential_and_is_accepted(tmp_path):
    service = unit(EXAMPLES / "systemd/auditlake.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["DynamicUser"] == "yes" or service.get("User") not in (None, "root")
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key
    credential, source = service["LoadCredential"].split(":", 1)
    assert source.startswith("/etc/")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    env = {}
    for assignment in shlex.split(service["Environment"]):
        name, value = assignment.split("=", 1)
        env[name] = value.replace("%d", str(credentials))
    # The secret's variable names the credential systemd hands over, not the file it comes from.
    assert env["ZENDESK_OAUTH_CLIENT_SECRET_FILE"] == f"{credentials}/{credential}"
    assert service["EnvironmentFile"].startswith("-"), "optional: the service starts without it"
    tokens = command_tokens(service["ExecStart"])
    assert tokens[0] == "/usr/local/bin/auditlake"
    assert tokens[tokens.index("--dest") + 1].startswith(f"/var/lib/{service['StateDirectory']}/")
    accepted(tokens[1:], env, tmp_path)

    timer = unit(EXAMPLES / "systemd/auditlake.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_crontab_line_is_accepted_with_the_crontab_environment(tmp_path):
    env, jobs = {}, []
    for line in (EXAMPLES / "cron/auditlake.crontab").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            name, value = line.split("=", 1)
            env[name] = value
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, line
        assert "%" not in fields[5], "cron turns % into a newline"
        jobs.append(command_tokens(fields[5]))
    (tokens,) = jobs
    assert tokens[0] == "/usr/local/bin/auditlake"
    accepted(tokens[1:], env, tmp_path)


def dockerfile_instructions():
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            yield instruction.upper(), rest.strip()


def test_the_dockerfile_copies_files_that_exist_and_runs_the_binary_as_non_root():
    stages = []
    for instruction, rest in dockerfile_instructions():
        if instruction == "FROM":
            stages.append({"from": rest, "copy": [], "user": None, "entrypoint": None, "run": []})
        elif instruction == "COPY":
            stages[-1]["copy"].append(shlex.split(rest))
        elif instruction == "USER":
            stages[-1]["user"] = rest
        elif instruction == "ENTRYPOINT":
            stages[-1]["entrypoint"] = rest
        elif instruction == "RUN":
            stages[-1]["run"].append(rest)
    assert len(stages) >= 2, "multi-stage"
    build, final = stages[0], stages[-1]
    assert re.match(r"rust:[\d.]+-slim-bookworm AS \w+", build["from"]), build["from"]
    assert any("cargo build --release --locked" in r for r in build["run"])
    ignored = [p.strip().rstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    assert {"target", ".venv", ".git"} <= set(ignored)
    for stage in stages:
        for copy in stage["copy"]:
            if any(a.startswith("--from") for a in copy):
                continue
            for src in copy[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
                assert src.rstrip("/") not in ignored, f"COPY {src}: excluded by .dockerignore"
    assert final["user"] not in (None, "root", "0") and not final["user"].startswith("0:")
    assert final["entrypoint"] is not None
    entrypoint = yaml.safe_load(final["entrypoint"])  # the exec form is a JSON array
    assert entrypoint == ["/usr/local/bin/auditlake"]
    assert any(c[-1] == entrypoint[0] and c[0].startswith("--from=") for c in final["copy"])


def readme_section(title):
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def check_readme_commands(section, tmp_path):
    """Runs every `auditlake` command line of the section's shell blocks with --check-config;
    returns how many there were."""
    blocks = re.findall(r"```(?:sh|console)\n(.*?)```", section, re.S)
    checked = 0
    for block in blocks:
        for line in re.sub(r"\\\n", " ", block).splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            tokens = command_tokens(line)
            programs = [i for i, t in enumerate(tokens)
                        if Path(t).name == "auditlake" and i + 1 < len(tokens) and tokens[i + 1] in COMMANDS]
            if not programs:
                continue
            program = programs[-1]
            env = {}
            for i, token in enumerate(tokens[:program]):
                if tokens[i - 1] == "-e" and i > 0 or re.match(r"^[A-Z_][A-Z0-9_]*=", token):
                    name, _, value = token.partition("=")
                    env[name] = value
            args = [a for a in tokens[program + 1:] if a != "--check-config"]
            accepted(args, env, tmp_path)
            checked += 1
    return checked


@pytest.mark.parametrize("title", ["Monitoring", "Querying the lake"])
def test_every_auditlake_command_in_the_readmes_monitoring_and_query_sections_is_accepted(title, tmp_path):
    assert check_readme_commands(readme_section(title), tmp_path) >= 1


def test_every_auditlake_command_in_the_readme_schedule_section_is_accepted(tmp_path):
    section = readme_section("Running on a schedule")
    assert check_readme_commands(section, tmp_path) >= 2, section
    crontab = (EXAMPLES / "cron/auditlake.crontab").read_text().splitlines()
    (shown,) = re.findall(r"```crontab\n(.*?)```", section, re.S)
    assert all(line in crontab for line in shown.splitlines()), "the README's crontab is the tested one"
    for example in ["kubernetes/cronjob.yaml", "airflow/auditlake_dag.py", "systemd/auditlake.service",
                    "systemd/auditlake.timer", "cron/auditlake.crontab", "accounts.toml",
                    "kubernetes/cronjob-accounts.yaml", "airflow/auditlake_accounts_dag.py"]:
        assert f"examples/{example}" in section, example



def with_dummy_secrets(text, tmp_path):
    """An accounts file's text with each `-file` key naming a temporary file that holds a dummy
    secret, and the environment each `-env` key names; returns (path of the copy, environment)."""
    env = {}
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)

    def dummy_file(match):
        secret = secrets / f"secret-{len(list(secrets.iterdir()))}"
        secret.write_text(DUMMY_SECRET + "\n")
        return f'{match.group(1)} = "{secret}"'

    text = re.sub(r'^([a-z-]+-file) = "([^"]+)"', dummy_file, text, flags=re.M)
    for name in re.findall(r'^[a-z-]+-env = "([A-Z0-9_]+)"', text, flags=re.M):
        env[name] = DUMMY_SECRET
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path, env


def account_subdomains(text):
    return [a["subdomain"] for a in tomllib.loads(text)["account"]]


def test_the_accounts_file_is_accepted_with_each_account_checked(tmp_path):
    text = (EXAMPLES / "accounts.toml").read_text()
    assert len(account_subdomains(text)) >= 3
    # Secrets are named, never inline.
    assert not re.search(r'^(oauth-client-secret|oauth-token|api-token) =', text, flags=re.M)
    path, env = with_dummy_secrets(text, tmp_path)
    out = accepted(["export", "--config", str(path)], env, tmp_path)
    assert out.count("export would run") == len(account_subdomains(text)), out


def test_the_kubernetes_indexed_job_fans_out_one_shard_per_pod_over_the_accounts(tmp_path):
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "kubernetes/cronjob-accounts.yaml").read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"ServiceAccount", "ConfigMap", "CronJob"}
    cron = by_kind["CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    shards = int(args[args.index("--shard") + 1])
    # One pod per shard, all at once, and the shard count matches the file's accounts.
    assert job["completions"] == job["parallelism"] == shards
    accounts_toml = by_kind["ConfigMap"]["data"]["accounts.toml"]
    subdomains = account_subdomains(accounts_toml)
    assert len(subdomains) == shards
    # The file is the mounted ConfigMap; every secret it names is in the mounted Secret.
    config_path = Path(args[args.index("--config") + 1])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (config_volume,) = [n for n, v in volumes.items() if "configMap" in v]
    assert volumes[config_volume]["configMap"]["name"] == by_kind["ConfigMap"]["metadata"]["name"]
    assert str(config_path.parent) == mounts[config_volume]
    (secret_volume,) = [n for n, v in volumes.items() if "secret" in v]
    for path in re.findall(r'-file = "([^"]+)"', accounts_toml):
        assert path.startswith(mounts[secret_volume] + "/"), path
    # Each pod's index picks one account, and every account is some pod's.
    path, env = with_dummy_secrets(accounts_toml, tmp_path)
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    picked = []
    for index in range(shards):
        pod_args = [str(path) if a == str(config_path) else a for a in args]
        out = accepted(pod_args, {**env, "JOB_COMPLETION_INDEX": str(index)}, tmp_path)
        assert out.count("export would run") == 1, out
        picked += [s for s in subdomains if f"export would run: subdomain {s} " in out]
    assert sorted(picked) == sorted(subdomains)


def test_the_airflow_dag_maps_one_task_over_each_account_of_the_file(tmp_path, monkeypatch):
    path = EXAMPLES / "airflow/auditlake_accounts_dag.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    accounts_file = EXAMPLES / "accounts.toml"
    monkeypatch.setenv("AUDITLAKE_ACCOUNTS_FILE", str(accounts_file))
    dags, mapped = [], []

    class DAG:
        def __init__(self, **kwargs):
            dags.append(kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Partial:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def expand(self, **kwargs):
            mapped.append((self.kwargs, kwargs))

    class BashOperator:
        @staticmethod
        def partial(**kwargs):
            return Partial(**kwargs)

    def task(function):
        # Airflow runs the task when the DAG runs; here it runs at once.
        return function

    stand_ins = {"DAG": DAG, "BashOperator": BashOperator, "task": task}
    install_stand_ins(tree, stand_ins, monkeypatch)
    exec(compile(tree, str(path), "exec"), {"__name__": "auditlake_accounts_dag"})
    (dag,) = dags
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    ((partial, expanded),) = mapped
    assert partial["append_env"] is True
    commands = expanded["bash_command"]
    text = accounts_file.read_text()
    copy, env = with_dummy_secrets(text, tmp_path)
    seen = []
    for command in commands:
        tokens = command_tokens(command)
        assert tokens[0] == "auditlake"
        assert tokens[tokens.index("--config") + 1] == str(accounts_file)
        seen.append(tokens[tokens.index("--account") + 1])
        tokens[tokens.index("--config") + 1] = str(copy)
        out = accepted(tokens[1:], env, tmp_path)
        assert out.count("export would run") == 1, out
    assert seen == account_subdomains(text)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
