"""Placeholder secrets are refused: the container entrypoint (run as a script, as the image
runs it) stops before the service starts when a secret is still ``CHANGE-ME`` or the like,
naming the variable; compose's ``preflight`` services check every secret the stack uses
before InfluxDB, the service or Grafana start."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPT = DEPLOY / "docker" / "entrypoint.py"
COMPOSE = DEPLOY / "compose.yaml"
SECRET = re.compile(r"TOKEN|PASSWORD")


def run(args: list[str], env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not SECRET.search(k)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**base, "VPP_RUNTIME_DIR": str(tmp_path / "run"), **env})


def site(tmp_path) -> Path:
    cfg = tmp_path / "site.yaml"
    cfg.write_text('storage:\n  token: "${VPP_INFLUX_TOKEN}"\n')
    return cfg


@pytest.mark.parametrize("value", ["CHANGE-ME", "change-me", "changeme", "REPLACE_ME", "<your token>", "xxxx",
                                   "password", "CHANGE-ME-please"])
def test_the_entrypoint_refuses_a_placeholder_secret(tmp_path, value):
    cmd = [sys.executable, "-c", "print('the service started')", "--config", str(site(tmp_path))]
    r = run(cmd, {"VPP_INFLUX_TOKEN": value}, tmp_path)
    assert r.returncode == 2, r
    assert "the service started" not in r.stdout
    assert "VPP_INFLUX_TOKEN" in r.stderr and "placeholder" in r.stderr, r.stderr


def test_the_entrypoint_starts_the_command_with_a_real_secret(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print(open(sys.argv[2]).read())", "--config", str(site(tmp_path))]
    r = run(cmd, {"VPP_INFLUX_TOKEN": "s3cr3t-t0ken-9f2"}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'token: "s3cr3t-t0ken-9f2"' in r.stdout


def test_check_secrets_names_every_bad_variable(tmp_path):
    env = {"A_TOKEN": "CHANGE-ME", "B_PASSWORD": "short", "C_TOKEN": "a-real-long-token-value"}
    r = run(["--check-secrets", "A_TOKEN", "B_PASSWORD", "C_TOKEN", "D_TOKEN"], env, tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3, r.stderr
    assert "A_TOKEN is still the placeholder" in lines[0]
    assert "B_PASSWORD is shorter than 8" in lines[1]
    assert "D_TOKEN" in lines[2] and "set D_TOKEN or D_TOKEN_FILE" in lines[2]
    ok = run(["--check-secrets", "C_TOKEN"], env, tmp_path)
    assert ok.returncode == 0 and "secrets ok: C_TOKEN" in ok.stdout


def test_env_example_as_shipped_is_refused(tmp_path):
    example = dict(line.split("=", 1) for line in (DEPLOY / "env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    secrets = sorted(k for k in example if SECRET.search(k))
    assert secrets
    r = run(["--check-secrets", *secrets], example, tmp_path)
    assert r.returncode == 2 and all(name in r.stderr for name in secrets), r.stderr


def test_compose_checks_every_secret_before_the_stack_starts():
    compose = yaml.safe_load(COMPOSE.read_text())
    s = compose["services"]
    checked: dict[str, set[str]] = {}
    for name in ("preflight", "preflight-grafana"):
        pre = s[name]
        assert pre["entrypoint"] == ["python", "/usr/local/lib/vpp/entrypoint.py", "--check-secrets"]
        assert pre["image"] == s["vpp"]["image"] and pre["restart"] == "no"
        assert set(pre["command"]) == set(pre["environment"])
        checked[name] = set(pre["command"])
    # every secret a service gets is checked by a preflight that service waits for
    for name, svc in s.items():
        if name.startswith("preflight"):
            continue
        secrets = {m for k, v in (svc.get("environment") or {}).items() if SECRET.search(k)
                   for m in re.findall(r"\$\{([A-Z_]+)", str(v))}
        if name == "sim":  # starts after vpp, which waited
            assert "vpp" in svc["depends_on"]
            continue
        waits = {d for d, c in (svc.get("depends_on") or {}).items()
                 if isinstance(c, dict) and c.get("condition") == "service_completed_successfully"}
        if secrets:
            assert waits and secrets <= set().union(*(checked[w] for w in waits)), (name, secrets, waits)
    assert "preflight" in s["influxdb"]["depends_on"] and "preflight" in s["vpp"]["depends_on"]
    assert s["preflight-grafana"]["profiles"] == s["grafana"]["profiles"]
