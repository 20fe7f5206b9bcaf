"""Static checks of deploy/: the systemd unit, env file, container, IAM, CloudFormation, nginx."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import msgspec
import pytest
from cfnlint.decode import cfn_yaml

from hsl_live.cli import main
from hsl_live.pipeline import DRAIN_DEADLINE_SECONDS
from hsl_live.settings import Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
UNIT = SYSTEMD / "hsl-live.service"
ENV_EXAMPLE = DEPLOY / "hsl-live.env.example"
CONTAINERFILE = DEPLOY / "Containerfile"
INGEST_POLICY = DEPLOY / "iam" / "ingest-policy.json"
READER_POLICY = DEPLOY / "iam" / "athena-reader-policy.json"
TEMPLATE = DEPLOY / "cloudformation" / "hsl-live.yaml"
NGINX_SITE = DEPLOY / "nginx" / "hsl-live.conf"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

APP_DIR = "/opt/hsl-live"
STATE_DIR = "/var/lib/hsl-live"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
S3_WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl"}


# --- helpers -------------------------------------------------------------------------------


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """Return (section, key, value) for every assignment in a systemd unit, in order."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(key: str) -> list[str]:
    """Return every value a key of the unit has, in order."""
    return [value for _, name, value in unit_entries(UNIT.read_text()) if name == key]


def unit_value(key: str) -> str:
    """Return the single value of a unit key."""
    values = unit_values(key)
    assert len(values) == 1, f"{key} appears {len(values)} times"
    return values[0]


def env_assignments(text: str) -> dict[str, str]:
    """Return the uncommented NAME=value lines of an environment file."""
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, _, value in pairs if not name.startswith("#")}


def seconds(value: str) -> float:
    """Return a systemd time span such as 45s, 1min 30s or 90 in seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def load_policy(path: Path) -> dict[str, Any]:
    """Return an IAM policy file as parsed JSON."""
    policy: dict[str, Any] = json.loads(path.read_text())
    return policy


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a policy's statements with Action and Resource always as lists."""
    result = []
    for statement in policy["Statement"]:
        normal = dict(statement)
        for key in ("Action", "Resource"):
            value = statement.get(key, [])
            normal[key] = [value] if isinstance(value, (str, dict)) else list(value)
        result.append(normal)
    return result


def actions_by_sid(policy: dict[str, Any]) -> dict[str, set[str]]:
    """Return each statement's actions keyed by its Sid."""
    return {item["Sid"]: set(item["Action"]) for item in statements(policy)}


def template() -> dict[str, Any]:
    """Return the CloudFormation template, with intrinsic functions as dicts."""
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return loaded


def resource(name: str) -> dict[str, Any]:
    """Return one resource's Properties from the template."""
    properties: dict[str, Any] = template()["Resources"][name]["Properties"]
    return properties


def containerfile() -> list[Any]:
    """Return the Containerfile's instructions as parsed by BuildKit's own parser."""
    return list(dockerfile.parse_file(str(CONTAINERFILE)))


def final_stage() -> list[Any]:
    """Return the instructions of the image's last stage."""
    commands = containerfile()
    last_from = max(index for index, command in enumerate(commands) if command.cmd == "FROM")
    return commands[last_from:]


def nginx_config() -> str:
    """Return the nginx sample without its comments."""
    lines = NGINX_SITE.read_text().splitlines()
    return "\n".join(line.partition("#")[0].rstrip() for line in lines)


def nginx_block(text: str, opening: str) -> str:
    """Return the body of the first `opening {` block (blocks inside it are not nested)."""
    start = text.index(opening + " {") + len(opening) + 2
    return text[start : text.index("}", start)]


def placeholders(text: str) -> set[str]:
    """Return the ${Name} placeholders a policy file uses."""
    return set(re.findall(r"\$\{([A-Za-z]+)\}", text))


# --- systemd unit ---------------------------------------------------------------------------


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists, so point it at a stand-in.
    app = tmp_path / "opt" / "hsl-live"
    program = app / ".venv" / "bin" / "hsl-live"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(APP_DIR, str(app)))

    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", str(unit)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "hsl-live" not in result.stderr, result.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_exposure_is_low(tmp_path: Path) -> None:
    # systemd's own score: 0 is fully locked down, 10 unprotected; it rates ours 1.6.
    unit = tmp_path / UNIT.name
    shutil.copyfile(UNIT, unit)
    command = [str(SYSTEMD_ANALYZE), "security", "--offline=yes", "--threshold=25", str(unit)]

    result = subprocess.run(command, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_runs_an_existing_cli_command(capsys: pytest.CaptureFixture[str]) -> None:
    program, *arguments = shlex.split(unit_value("ExecStart"))
    assert program == f"{APP_DIR}/.venv/bin/hsl-live"

    with pytest.raises(SystemExit) as exit_info:
        main([*arguments, "--help"])

    assert exit_info.value.code == 0, capsys.readouterr().err


def test_unit_stop_timeout_covers_the_lake_drain() -> None:
    assert unit_value("KillSignal") == "SIGTERM"
    assert seconds(unit_value("TimeoutStopSec")) >= DRAIN_DEADLINE_SECONDS + 15


def test_unit_restarts_on_failure_as_a_dedicated_user() -> None:
    assert unit_value("Restart") == "on-failure"
    assert unit_value("DynamicUser") == "yes"
    assert unit_values("User") == []


def test_unit_writes_only_its_state_directory() -> None:
    environment = dict(value.partition("=")[::2] for value in unit_values("Environment"))

    assert unit_value("ProtectSystem") == "strict"
    assert unit_value("StateDirectory") == "hsl-live"
    assert unit_values("ReadWritePaths") == []
    assert environment["HSL_LIVE_SPOOL_DIR"].startswith(STATE_DIR + "/")


def test_unit_reads_settings_from_the_env_file() -> None:
    assert unit_value("EnvironmentFile") == "/etc/hsl-live/hsl-live.env"
    assert unit_value("WorkingDirectory") == APP_DIR


# --- environment file -----------------------------------------------------------------------


def test_env_example_names_only_existing_settings() -> None:
    known = {env_name(field.name) for field in msgspec.structs.fields(Settings)}
    named = set(re.findall(r"\bHSL_LIVE_[A-Z0-9_]+", ENV_EXAMPLE.read_text()))
    named |= {name for name in env_assignments(UNIT.read_text()) if name.startswith("HSL_LIVE_")}

    assert named, "the env example names no setting"
    assert named <= known, f"unknown settings: {sorted(named - known)}"


def test_env_example_values_load() -> None:
    environ = env_assignments(ENV_EXAMPLE.read_text())

    settings = load_settings(environ=environ)

    assert settings.is_s3
    assert settings.host == "127.0.0.1"
    assert settings.spool_dir.startswith(STATE_DIR + "/")


# --- container ------------------------------------------------------------------------------


def test_containerfile_builds_on_python_311_slim() -> None:
    images = [command.value[0] for command in containerfile() if command.cmd == "FROM"]

    assert images
    assert all(image == "python:3.11-slim" for image in images)


def test_containerfile_installs_with_the_constraints() -> None:
    runs = [command.value[0] for command in containerfile() if command.cmd == "RUN"]

    assert any(re.search(r"pip install -c constraints\.txt (-e )?\.$", run) for run in runs)


def test_containerfile_keeps_the_map_beside_the_source_tree() -> None:
    # api.py serves src/hsl_live/../../frontend, so both must land under one WORKDIR.
    stage = final_stage()
    workdirs = [c.value[0] for c in stage if c.cmd == "WORKDIR"]
    targets = {c.value[-1] for c in stage if c.cmd == "COPY" and not c.flags}

    assert workdirs == ["/app"]
    assert {"src/", "frontend/", "queries/"} <= targets


def test_containerfile_runs_as_a_non_root_user() -> None:
    users = [command.value[0] for command in final_stage() if command.cmd == "USER"]

    assert users, "the final stage sets no USER"
    assert users[-1].partition(":")[0] not in ("root", "0")


def test_containerfile_exposes_the_http_port_on_all_interfaces() -> None:
    stage = final_stage()
    exposed = [port for command in stage if command.cmd == "EXPOSE" for port in command.value]
    env = [command.value for command in stage if command.cmd == "ENV"]
    variables = {values[i]: values[i + 1] for values in env for i in range(0, len(values), 2)}

    assert "8000" in exposed
    assert variables["HSL_LIVE_HOST"] == "0.0.0.0"
    assert variables["HSL_LIVE_PORT"] == "8000"


def test_containerfile_keeps_the_lake_in_a_volume() -> None:
    stage = final_stage()
    volumes = [path for command in stage if command.cmd == "VOLUME" for path in command.value]
    env = [command.value for command in stage if command.cmd == "ENV"]
    variables = {values[i]: values[i + 1] for values in env for i in range(0, len(values), 2)}

    assert volumes == ["/data"]
    assert variables["HSL_LIVE_LAKE_URL"].startswith("/data/")
    assert variables["HSL_LIVE_SPOOL_DIR"].startswith("/data/")


def test_containerfile_copies_only_existing_paths() -> None:
    copies = [c for c in containerfile() if c.cmd == "COPY" and not c.flags]
    sources = [source for command in copies for source in command.value[:-1]]

    assert {"frontend/", "queries/", "constraints.txt"} <= set(sources)
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert missing == []


def test_dockerignore_keeps_every_copied_path() -> None:
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = [c for c in containerfile() if c.cmd == "COPY" and not c.flags]
    sources = {source.rstrip("/") for command in copies for source in command.value[:-1]}

    assert sources <= kept


def test_containerfile_runs_hsl_live_run() -> None:
    stage = final_stage()
    entrypoint = [c.value for c in stage if c.cmd == "ENTRYPOINT"][-1]
    command = [c.value for c in stage if c.cmd == "CMD"][-1]

    assert [*entrypoint, *command] == ["hsl-live", "run"]


class _Health(http.server.BaseHTTPRequestHandler):
    """Answer 200 on /healthz and 404 elsewhere, like the app."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def healthcheck_command() -> list[str]:
    """Return the image's HEALTHCHECK command (exec form, without the CMD keyword)."""
    checks = [c for c in final_stage() if c.cmd == "HEALTHCHECK"]
    assert len(checks) == 1
    assert checks[0].json, "HEALTHCHECK should use the exec form"
    kind, *command = checks[0].value
    assert kind == "CMD"
    return list(command)


def test_containerfile_healthcheck_passes_when_healthz_answers(health_server: int) -> None:
    program, *arguments = healthcheck_command()
    environ = {**os.environ, "HSL_LIVE_PORT": str(health_server)}

    result = subprocess.run(
        [sys.executable if program == "python" else program, *arguments],
        env=environ,
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr


def test_containerfile_healthcheck_fails_when_nothing_listens() -> None:
    program, *arguments = healthcheck_command()
    # Port 9 (discard) has no listener on a test machine, so the probe is refused.
    environ = {**os.environ, "HSL_LIVE_PORT": "9"}

    result = subprocess.run(
        [sys.executable if program == "python" else program, *arguments],
        env=environ,
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert result.returncode != 0


# --- IAM policies ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [INGEST_POLICY, READER_POLICY], ids=["ingest", "reader"])
def test_policy_has_no_wildcard_actions(path: Path) -> None:
    policy = load_policy(path)
    actions = [action for item in statements(policy) for action in item["Action"]]

    assert policy["Version"] == "2012-10-17"
    assert all(item["Effect"] == "Allow" for item in statements(policy))
    assert [action for action in actions if "*" in action] == []


@pytest.mark.parametrize("path", [INGEST_POLICY, READER_POLICY], ids=["ingest", "reader"])
def test_policy_writes_to_s3_only_under_a_prefix(path: Path) -> None:
    for item in statements(load_policy(path)):
        s3_names = [action.split(":")[1] for action in item["Action"] if action.startswith("s3:")]
        if any(not name.startswith(("Get", "List")) for name in s3_names):
            assert "*" not in item["Resource"], item["Sid"]
            assert all(resource.endswith("/*") for resource in item["Resource"]), item["Sid"]


def test_ingest_policy_grants_only_lake_object_access() -> None:
    policy = load_policy(INGEST_POLICY)
    actions = {action for item in statements(policy) for action in item["Action"]}
    resources = {resource for item in statements(policy) for resource in item["Resource"]}

    assert actions == {
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
    }
    assert resources == {
        "arn:aws:s3:::${BucketName}/${LakePrefix}/*",
        "arn:aws:s3:::${BucketName}",
    }


# The IAM action each S3 call of the sink needs (multipart parts and completion are PutObject).
SINK_CALL_ACTIONS = {
    "put_object": "s3:PutObject",
    "create_multipart_upload": "s3:PutObject",
    "upload_part": "s3:PutObject",
    "complete_multipart_upload": "s3:PutObject",
    "abort_multipart_upload": "s3:AbortMultipartUpload",
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "delete_object": "s3:DeleteObject",
    "list_objects_v2": "s3:ListBucket",
    "head_bucket": "s3:ListBucket",
}


def test_ingest_policy_grants_every_call_the_sink_makes() -> None:
    source = (ROOT / "src" / "hsl_live" / "sink.py").read_text(encoding="utf-8")
    calls = set(re.findall(r"client\.(\w+)\(", source)) - {"get_paginator"}
    calls |= set(re.findall(r"get_paginator\(\s*\"(\w+)\"", source))
    granted = {
        action for item in statements(load_policy(INGEST_POLICY)) for action in item["Action"]
    }

    assert calls <= set(SINK_CALL_ACTIONS), "map the new S3 call to its IAM action here"
    assert {SINK_CALL_ACTIONS[call] for call in calls} <= granted


def test_ingest_policy_lists_only_under_the_lake_prefix() -> None:
    (listing,) = [
        i for i in statements(load_policy(INGEST_POLICY)) if "s3:ListBucket" in i["Action"]
    ]

    prefixes = listing["Condition"]["StringLikeIfExists"]["s3:prefix"]

    assert prefixes == ["${LakePrefix}/*"]


def test_reader_policy_writes_only_to_the_results_location() -> None:
    writes = [
        item
        for item in statements(load_policy(READER_POLICY))
        if not S3_WRITES.isdisjoint(item["Action"])
    ]

    assert [item["Resource"] for item in writes] == [
        ["arn:aws:s3:::${ResultsBucket}/${ResultsPrefix}/*"]
    ]


def test_reader_policy_reads_the_catalog_without_changing_it() -> None:
    actions = {a for i in statements(load_policy(READER_POLICY)) for a in i["Action"]}
    glue = {action.split(":")[1] for action in actions if action.startswith("glue:")}

    assert glue
    assert all(name.startswith(("Get", "BatchGet")) for name in glue)


def test_reader_policy_queries_only_in_its_workgroup() -> None:
    for item in statements(load_policy(READER_POLICY)):
        if "athena:StartQueryExecution" in item["Action"]:
            assert item["Resource"] == [
                "arn:aws:athena:${Region}:${AccountId}:workgroup/${WorkGroup}"
            ]


def test_reader_policy_reads_the_lake_prefix_only() -> None:
    for item in statements(load_policy(READER_POLICY)):
        if "s3:GetObject" in item["Action"] and "s3:PutObject" not in item["Action"]:
            assert item["Resource"] == ["arn:aws:s3:::${BucketName}/${LakePrefix}/*"]


@pytest.mark.parametrize("path", [INGEST_POLICY, READER_POLICY], ids=["ingest", "reader"])
def test_policy_placeholders_are_documented(path: Path) -> None:
    used = placeholders(path.read_text())
    doc = DEPLOY_DOC.read_text()

    assert used
    assert [name for name in sorted(used) if f"${{{name}}}" not in doc] == []


# --- CloudFormation -------------------------------------------------------------------------


def test_template_passes_cfn_lint() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    command = [str(cfn_lint), "--include-checks", "I", "--", str(TEMPLATE)]

    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("path", "resource_name"),
    [(INGEST_POLICY, "IngestRole"), (READER_POLICY, "AthenaReaderPolicy")],
    ids=["ingest", "reader"],
)
def test_template_policy_matches_the_json_file(path: Path, resource_name: str) -> None:
    properties = resource(resource_name)
    document = (
        properties["Policies"][0]["PolicyDocument"]
        if "Policies" in properties
        else properties["PolicyDocument"]
    )

    assert actions_by_sid(document) == actions_by_sid(load_policy(path))


def test_template_lake_bucket_is_encrypted_and_private() -> None:
    bucket = resource("LakeBucket")
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]

    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4


def test_template_raw_zone_expires_and_uploads_are_aborted() -> None:
    rules = resource("LakeBucket")["LifecycleConfiguration"]["Rules"]
    raw = [rule for rule in rules if rule.get("Prefix") == {"Fn::Sub": "${LakePrefix}/raw/"}]

    assert len(raw) == 1
    assert raw[0]["ExpirationInDays"] == {"Ref": "RawRetentionDays"}
    assert any("AbortIncompleteMultipartUpload" in rule for rule in rules)


def test_template_workgroup_enforces_results_and_cutoff() -> None:
    config = resource("WorkGroup")["WorkGroupConfiguration"]

    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "BytesScannedCutoffPerQuery"}
    assert config["ResultConfiguration"]["OutputLocation"] == {
        "Fn::Sub": "s3://${ResultsBucket}/athena-results/"
    }


def test_template_instance_profile_carries_the_ingest_role() -> None:
    assert resource("InstanceProfile")["Roles"] == [{"Ref": "IngestRole"}]
    assert resource("Host")["IamInstanceProfile"] == {"Ref": "InstanceProfile"}


# --- nginx ----------------------------------------------------------------------------------


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*request, "-subj", "/CN=map.example.org", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    live = "/etc/letsencrypt/live/map.example.org"
    site = (
        NGINX_SITE.read_text()
        .replace(f"{live}/fullchain.pem", str(cert))
        .replace(f"{live}/privkey.pem", str(key))
        .replace("/var/log/nginx/", f"{tmp_path}/")
    )
    (tmp_path / "site.conf").write_text(site)
    temp = "\n".join(
        f"    {kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp}\n    include {tmp_path}/site.conf;\n}}\n"
    )

    result = subprocess.run(
        [str(NGINX), "-t", "-p", str(tmp_path), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def test_nginx_events_location_streams_unbuffered() -> None:
    block = nginx_block(nginx_config(), "location /events")
    directives = {line.strip().rstrip(";") for line in block.splitlines() if line.strip()}

    assert {
        "proxy_pass http://hsl_live",
        "proxy_buffering off",
        "proxy_cache off",
        "proxy_read_timeout 1h",
        "gzip off",
    } <= directives


def test_nginx_proxies_http_11_without_connection_close() -> None:
    text = nginx_config()

    assert "proxy_http_version 1.1;" in text
    assert 'proxy_set_header Connection "";' in text
    assert "proxy_ignore_headers" not in text
    assert "server 127.0.0.1:8000;" in nginx_block(text, "upstream hsl_live")


def test_nginx_serves_tls_and_redirects_http() -> None:
    text = nginx_config()

    assert re.search(r"listen 443 ssl", text)
    assert "ssl_certificate /etc/letsencrypt/live/" in text
    assert "return 301 https://$host$request_uri;" in text
