"""Static checks of the deployment files (Docker cannot run here): compose, Dockerfile, configs,
InfluxDB init, Grafana provisioning and dashboard queries, systemd unit, config renderer.

The dashboard's InfluxQL is checked against the schema the storage layer really writes: the
measurement, tag and field names are read back from line protocol encoded by
:class:`vpp.storage.influx.InfluxStore` for a snapshot of every kind with every field of
:data:`drivers.protocols.FIELDS`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from drivers.protocols import FIELDS, Quality, Snapshot
from vpp.config import InfluxStorage, parse_config, read_config
from vpp.storage.base import MEASUREMENTS, RESERVED_FIELDS
from vpp.storage.influx import InfluxStore

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
OPS = DEPLOY / "OPERATIONS.md"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "site.json"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"
DASH_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "vpp.yaml"
INIT_DIR = DEPLOY / "influxdb" / "init"
UNIT = DEPLOY / "systemd" / "vpp.service"
INFLUX_EXAMPLE = DEPLOY / "examples" / "community-centre-influx2.yaml"

_spec = importlib.util.spec_from_file_location("vpp_deploy_entrypoint", DEPLOY / "docker" / "entrypoint.py")
entrypoint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(entrypoint)


# ---------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _interpolations(text: str) -> dict[str, str | None]:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR:?msg}`` in compose text → {VAR: default or None}."""
    out: dict[str, str | None] = {}
    for m in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", text):
        out[m.group(1)] = m.group(3) if m.group(2) in (":-", "-") else None
    return out


def _resolve(value: str) -> str:
    """Compose value with every ``${VAR:-default}`` replaced by its default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)


def _bind_mounts(service: dict) -> list[tuple[str, str]]:
    out = []
    for v in service.get("volumes", []):
        src, dst = _resolve(v).split(":")[:2]
        out.append((src, dst))
    return out


def _published(service: dict) -> dict[int, dict]:
    return {int(p["target"]): p for p in service.get("ports", [])}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, arg = line.partition(" ")
            out.append((op.upper(), arg.strip()))
    return out


def _exec_form(arg: str) -> list[str]:
    v = json.loads(arg)
    assert isinstance(v, list), f"use the exec (JSON) form: {arg}"
    return v


# ---------------------------------------------------------------------------- compose
def test_compose_services_profiles_and_images(compose):
    s = compose["services"]
    assert set(s) == {"preflight", "preflight-grafana", "influxdb", "vpp", "sim", "grafana"}
    assert s["influxdb"]["image"] == "influxdb:2.7"
    assert "profiles" not in s["influxdb"] and "profiles" not in s["vpp"]  # the default stack
    assert s["grafana"]["profiles"] == ["grafana"]
    assert s["sim"]["profiles"] == ["sim"]
    assert s["sim"]["network_mode"] == "service:vpp"  # the example's 127.0.0.1 endpoints
    assert s["vpp"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    for name in ("vpp", "sim"):
        build = s[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert s[name]["image"] == s["vpp"]["image"]


def test_compose_ports_are_loopback_and_documented(compose):
    s = compose["services"]
    expected = {"vpp": 8080, "influxdb": 8086, "grafana": 3000}
    ops = OPS.read_text()
    for name, port in expected.items():
        pub = _published(s[name])
        assert set(pub) == {port}, (name, pub)
        assert pub[port]["host_ip"] == "127.0.0.1" and int(pub[port]["published"]) == port
        assert re.search(rf"^\| {port}/tcp \|", ops, re.M), f"port {port} missing from the ports table"
    assert re.search(r"^\| 502/tcp \| outbound", ops, re.M)
    assert "ports" not in s["sim"]


def test_compose_volumes_declared_used_and_backed_up(compose):
    declared = set(compose["volumes"])
    used = set()
    for svc in compose["services"].values():
        for src, _dst in _bind_mounts(svc):
            if not src.startswith((".", "/")):
                used.add(src)
    assert used == declared
    vpp_mounts = dict((dst, src) for src, dst in _bind_mounts(compose["services"]["vpp"]))
    assert vpp_mounts["/var/lib/vpp"] == "vpp-data"
    ops = OPS.read_text()
    for v in ("vpp-data", "influxdb-data"):
        assert f"`{v}`" in ops, f"volume {v} not in the backup section"


def test_compose_bind_mount_sources_exist(compose):
    for name, svc in compose["services"].items():
        for src, dst in _bind_mounts(svc):
            if src.startswith("."):
                path = (COMPOSE.parent / _resolve(src)).resolve()
                assert path.exists(), f"{name}: {src} → {path} does not exist"


def test_compose_variables_are_listed_in_env_example_and_secrets_not_literal(compose):
    text = COMPOSE.read_text()
    env_example = dict(line.split("=", 1) for line in (DEPLOY / "env.example").read_text().splitlines()
                       if line and not line.startswith("#"))
    used = _interpolations(text)
    assert used, "compose should take its secrets from the environment"
    assert set(used) <= set(env_example), set(used) - set(env_example)
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"TOKEN|PASSWORD", key) and not key.endswith("_FILE"):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), \
                    f"{name}.{key} must be a required ${{VAR:?…}} interpolation, not a literal"
    gitignore = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in gitignore


def test_service_command_matches_image_and_config_mount(compose):
    vpp = compose["services"]["vpp"]
    instr = _dockerfile_instructions()
    cmd = _exec_form([a for op, a in instr if op == "CMD"][-1])
    assert cmd == ["vpp", "run", "--config", "/etc/vpp/site.yaml"]
    assert vpp["command"] == cmd
    mounts = {dst: src for src, dst in _bind_mounts(vpp)}
    assert (COMPOSE.parent / _resolve(mounts["/etc/vpp/site.yaml"])).resolve() == INFLUX_EXAMPLE
    assert "VPP_INFLUX_TOKEN" in vpp["environment"]
    assert "VPP_INFLUX_TOKEN" in entrypoint.placeholders(INFLUX_EXAMPLE.read_text())


# ---------------------------------------------------------------------------- Dockerfile
def test_dockerfile_base_user_copies_and_entrypoint():
    instr = _dockerfile_instructions()
    assert instr[0] == ("FROM", "python:3.12-slim")
    users = [a for op, a in instr if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    copies = [a.split() for op, a in instr if op == "COPY"]
    ignore = [ln.strip() for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*"
    for *srcs, dst in copies:
        for src in srcs:
            assert (ROOT / src).exists(), f"COPY source {src} missing"
            assert f"!{src}" in ignore or f"!{src}/" in ignore, f"{src} is excluded by the dockerignore"
    ep = _exec_form([a for op, a in instr if op == "ENTRYPOINT"][-1])
    assert ep[-1] in [dst for *_s, dst in copies]
    health = [a for op, a in instr if op == "HEALTHCHECK"][-1]
    assert "/api/v1/health" in health


def test_pyproject_packages_are_all_copied_into_the_image():
    import tomllib
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {a.split()[0] for op, a in _dockerfile_instructions() if op == "COPY"}
    for pattern in include:
        assert pattern.rstrip("*") in copied, f"package {pattern} not copied into the image"


# ---------------------------------------------------------------------------- site configs
def _site_configs() -> list[Path]:
    out = []
    for p in sorted(DEPLOY.rglob("*.y*ml")):
        data = yaml.safe_load(p.read_text())
        if isinstance(data, dict) and "site" in data and "devices" in data:
            out.append(p)
    return out


def test_examples_are_found():
    names = {p.name for p in _site_configs()}
    assert {"community-centre.yaml", "three-homes.yaml", "community-centre-influx2.yaml"} <= names


@pytest.mark.parametrize("path", _site_configs(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_site_config_validates(path):
    cfg = read_config(path)
    assert cfg.devices
    # rendered as the container does, it must still validate
    env = {n: "tok" for n in entrypoint.placeholders(path.read_text())}
    parse_config(yaml.safe_load(entrypoint.render(path.read_text(), env)), str(path))


def test_influx_example_matches_the_stack(compose):
    cfg = parse_config(yaml.safe_load(entrypoint.render(INFLUX_EXAMPLE.read_text(),
                                                        {"VPP_INFLUX_TOKEN": "abc123=="})))
    assert isinstance(cfg.storage, InfluxStorage)
    assert cfg.storage.token == "abc123=="
    assert cfg.storage.url == "http://influxdb:8086"
    assert cfg.storage.create_database is False
    influx_env = compose["services"]["influxdb"]["environment"]
    assert cfg.storage.database == influx_env["V1_DB_NAME"]
    assert cfg.storage.retention_policy in (None, influx_env["V1_RP_NAME"])
    assert cfg.api.port == 8080 and cfg.api.host == "0.0.0.0"
    for p in (cfg.api.ledger_path, cfg.api.keys_path, cfg.storage.spool_dir):
        assert p.startswith("/var/lib/vpp/"), p  # inside the vpp-data volume


# ---------------------------------------------------------------------------- InfluxDB init
def test_influx_init_script_creates_the_dbrp(compose):
    scripts = sorted(INIT_DIR.glob("*.sh"))
    assert scripts
    mounts = {dst: src for src, dst in _bind_mounts(compose["services"]["influxdb"])}
    assert (COMPOSE.parent / mounts["/docker-entrypoint-initdb.d"]).resolve() == INIT_DIR
    for s in scripts:
        assert s.stat().st_mode & stat.S_IXUSR, f"{s.name} must be executable (run-parts skips it)"
        subprocess.run(["bash", "-n", str(s)], check=True)
    text = "\n".join(s.read_text() for s in scripts)
    create = re.search(r"influx v1 dbrp create ([^\n]*)", text)
    assert create
    for flag in ("--bucket-id", "--db", "--rp", "--default"):
        assert flag in create.group(1)
    assert "V1_DB_NAME" in text and "DOCKER_INFLUXDB_INIT_BUCKET_ID" in text


# ---------------------------------------------------------------------------- Grafana
def test_grafana_provisioning(compose):
    ds = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    assert len(ds) == 1
    d = ds[0]
    assert d["type"] == "influxdb" and d["jsonData"]["version"] == "InfluxQL"
    assert d["jsonData"]["dbName"] == compose["services"]["influxdb"]["environment"]["V1_DB_NAME"]
    assert d["jsonData"]["httpHeaderName1"] == "Authorization"
    var = re.fullmatch(r"Token \$\{([A-Z_]+)\}", d["secureJsonData"]["httpHeaderValue1"])
    assert var and var.group(1) in compose["services"]["grafana"]["environment"]
    mounts = {dst: src for src, dst in _bind_mounts(compose["services"]["grafana"])}
    provider = yaml.safe_load(DASH_PROVIDER.read_text())["providers"][0]
    dash_dir = provider["options"]["path"]
    assert (COMPOSE.parent / mounts[dash_dir]).resolve() == DASHBOARD.parent
    assert (COMPOSE.parent / mounts["/etc/grafana/provisioning"]).resolve() == DATASOURCE.parent.parent
    dash = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dash["panels"]}
    uids |= {t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]}
    assert uids == {d["uid"]}


@pytest.fixture(scope="module")
def schema() -> tuple[dict[str, set[str]], set[str]]:
    """(fields per measurement, tag keys) as written by the InfluxDB store."""
    store = InfluxStore(InfluxStorage(backend="influxdb"), site="s")
    fields: dict[str, set[str]] = {}
    tags: set[str] = set()
    ts = datetime(2026, 6, 1, tzinfo=timezone.utc)
    for kind, names in FIELDS.items():
        snap = Snapshot("d", kind, ts, {n: 1.0 for n in names}, Quality.BAD, "why")
        series, fieldset, _ts = store.encode(snap).split(" ")
        measurement, *tagpairs = series.split(",")
        tags |= {t.split("=")[0] for t in tagpairs}
        fields[measurement] = {f.split("=")[0] for f in fieldset.split(",")}
    assert set(fields) == set(MEASUREMENTS) and RESERVED_FIELDS <= fields["pv"]
    return fields, tags


_IDENT = re.compile(r'"([^"]+)"')
_ALIAS = re.compile(r'\bAS\s+"([^"]+)"', re.I)


def _paren(s: str) -> tuple[str, str]:
    depth = 0
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return s[1:i], s[i + 1:]
    raise AssertionError(f"unbalanced parentheses: {s}")


def check_influxql(q: str, schema) -> set[str]:
    """Assert that ``q`` reads only measurements/fields/tags we write; return its output columns."""
    fields, tags = schema
    q = q.strip()
    if q.upper().startswith("SHOW TAG VALUES"):
        m = re.fullmatch(r'SHOW TAG VALUES(?: FROM "([^"]+)")? WITH KEY = "([^"]+)"(?: WHERE (.*))?', q)
        assert m, f"unrecognised SHOW query: {q}"
        assert m.group(1) is None or m.group(1) in fields, q
        assert m.group(2) in tags, q
        assert set(_IDENT.findall(m.group(3) or "")) <= tags, q
        return set()
    m = re.fullmatch(r"SELECT\s+(.+?)\s+FROM\s+(.*)", q, re.S | re.I)
    assert m, f"not a SELECT: {q}"
    sel, rest = m.groups()
    if rest.startswith("("):
        inner, after = _paren(rest)
        available = check_influxql(inner, schema)
    else:
        mm = re.match(r'((?:"[^"]+"\s*,\s*)*"[^"]+")(.*)', rest, re.S)
        assert mm, f"FROM must name quoted measurements: {q}"
        names = _IDENT.findall(mm.group(1))
        for n in names:
            assert n in fields, f"unknown measurement {n!r} in {q}"
        available = set.intersection(*(fields[n] for n in names))
        after = mm.group(2)
    where, _, group = after.partition("GROUP BY")
    aliases = set(_ALIAS.findall(sel))
    refs = set(_IDENT.findall(_ALIAS.sub("", sel)))
    assert refs, f"SELECT reads no field: {q}"
    assert refs <= available, f"unknown field(s) {refs - available} in {q}"
    assert set(_IDENT.findall(where)) <= available | tags, f"unknown name in WHERE of {q}"
    assert set(_IDENT.findall(group)) <= tags, f"GROUP BY a non-tag in {q}"
    for v in re.findall(r"\"quality\"\s*(?:=|!=|<>)\s*'([^']*)'", where):
        assert v in {x.value for x in Quality}, f"no quality {v!r}"
    return aliases | tags


def _dashboard_queries(dash: dict) -> list[str]:
    qs = [t["query"] for p in dash["panels"] for t in p["targets"]]
    qs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return qs


def test_dashboard_queries_use_the_written_schema(schema):
    dash = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dash["templating"]["list"]}
    used_measurements, used_fields = set(), set()
    for q in _dashboard_queries(dash):
        check_influxql(q, schema)
        used_measurements |= set(re.findall(r'FROM "([^"]+)"', q))
        used_fields |= set(_IDENT.findall(q))
        for v in re.findall(r"\$(\w+)", q):
            assert v in variables | {"timeFilter", "__interval"}, f"undefined variable ${v} in {q}"
    assert used_measurements == set(MEASUREMENTS)
    assert {"power_w", "soc"} <= used_fields


def test_dashboard_has_power_soc_and_reserve_floor():
    dash = json.loads(DASHBOARD.read_text())
    by_title = {p["title"]: p for p in dash["panels"]}
    power = " ".join(t["query"] for t in by_title["Site power"]["targets"])
    for m in ("pv", "battery", "meter", "ev_charger"):
        assert f'FROM "{m}"' in power
    soc = [t["query"] for t in by_title["Battery state of charge"]["targets"]]
    assert any('mean("soc") * 100' in q for q in soc)
    assert any("$reserve_floor_pct" in q for q in soc)


@pytest.mark.parametrize("bad", [
    'SELECT mean("power_kw") FROM "pv" WHERE $timeFilter',                      # no such field
    'SELECT mean("power_w") FROM "inverter" WHERE $timeFilter',                 # no such measurement
    'SELECT mean("soc") FROM "pv" WHERE $timeFilter',                           # field of another kind
    'SELECT mean("power_w") FROM "pv" WHERE "home" = \'h1\'',                   # no such tag
    'SELECT mean("power_w") FROM "pv" GROUP BY time(1m), "quality"',            # group by a field
    "SELECT mean(\"power_w\") FROM \"pv\" WHERE \"quality\" = 'ok'",            # no such quality
    'SELECT sum("x") FROM (SELECT mean("power_w") AS "p" FROM "pv") ',          # outer reads unknown alias
    'SELECT mean("soc") FROM "battery", "pv"',                                  # not in every measurement
    'SHOW TAG VALUES FROM "meter" WITH KEY = "role"',                            # no such tag
])
def test_query_checker_rejects_schema_mismatches(bad, schema):
    with pytest.raises(AssertionError):
        check_influxql(bad, schema)


# ---------------------------------------------------------------------------- systemd
def test_systemd_unit_runs_vpp_with_config():
    lines = [ln.strip() for ln in UNIT.read_text().splitlines()]
    execs = [ln.split("=", 1)[1] for ln in lines if ln.startswith("ExecStart=") and ln != "ExecStart="]
    assert len(execs) == 1
    argv = execs[0].split()
    assert argv[0].endswith("/vpp") and argv[1:3] == ["run", "--config"] and argv[3].endswith(".yaml")
    assert "User=vpp" in lines and "WorkingDirectory=/var/lib/vpp" in lines
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
        assert "Unknown key" not in r.stderr and "Invalid" not in r.stderr, r.stderr


# ---------------------------------------------------------------------------- entrypoint renderer
def test_render_fills_env_and_file_placeholders(tmp_path):
    secret = tmp_path / "tok"
    secret.write_text("from-file\n")
    text = 'a: "${A}"\nb: "${B}"\nc: $HOME and {A} stay, ${A} again\n'
    out = entrypoint.render(text, {"A": "x1", "B": "ignored", "B_FILE": str(secret)})
    assert out == 'a: "x1"\nb: "from-file"\nc: $HOME and {A} stay, x1 again\n'


@pytest.mark.parametrize("env, message", [
    ({}, "set A or A_FILE"),
    ({"A": ""}, "empty"),
    ({"A": 'x"y'}, "one line"),
    ({"A": "x\ny"}, "one line"),
    ({"A_FILE": "/nonexistent/tok"}, "A_FILE=/nonexistent/tok"),
])
def test_render_refuses_missing_or_unsafe_values(env, message):
    with pytest.raises(entrypoint.RenderError, match=re.escape(message)):
        entrypoint.render('token: "${A}"\n', env)


def test_prepare_points_config_at_private_rendered_copy(tmp_path):
    src = tmp_path / "site.yaml"
    src.write_text(INFLUX_EXAMPLE.read_text())
    run = tmp_path / "run"
    argv = entrypoint.prepare(["vpp", "run", "--config", str(src)], {"VPP_INFLUX_TOKEN": "t0k"}, run)
    assert argv[:3] == ["vpp", "run", "--config"] and Path(argv[3]).parent == run
    assert stat.S_IMODE(os.stat(argv[3]).st_mode) == 0o600
    assert read_config(argv[3]).storage.token == "t0k"
    eq = entrypoint.prepare(["vpp", "keys", "list", f"--config={src}"], {"VPP_INFLUX_TOKEN": "t"}, run)
    assert eq[3].startswith(f"--config={run}/")
    plain = DEPLOY / "examples" / "community-centre.yaml"
    argv = ["vpp", "run", "--config", str(plain)]
    assert entrypoint.prepare(argv, {}, run) == argv  # no placeholders: untouched


# ---------------------------------------------------------------------------- dashboard on influxd
def _grafana_expand(q: str, start_ms: int, end_ms: int) -> str:
    """What Grafana's InfluxQL datasource sends for our macros and variables."""
    return (q.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
             .replace("$__interval", "1m").replace("$site", "izumi").replace("$grid_meter", "meter1")
             .replace("$reserve_floor_pct", "30"))


def test_dashboard_queries_run_on_influxd_and_compute_site_values(influxd):
    """Every dashboard query runs on a real InfluxQL engine over points our store wrote, and the
    site sums, capacity-weighted SoC, floor line and quality filter come out as computed by hand."""
    from datetime import timedelta

    from drivers.protocols import DeviceKind as K
    from vpp.storage.base import ts_ns

    store = InfluxStore(InfluxStorage(backend="influxdb", url=influxd.url, database="deploy_dashboard",
                                      timeout_s=5.0), site="izumi")
    store.open()
    t0 = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)
    snaps = []
    for i in range(10):
        t = t0 + timedelta(minutes=i)
        snaps += [Snapshot("pv1", K.PV, t, {"power_w": 1000.0, "power_limit_w": 50000.0}),
                  Snapshot("pv2", K.PV, t, {"power_w": 2000.0}),
                  Snapshot("bat1", K.BATTERY, t, {"power_w": 500.0, "soc": 0.5, "capacity_wh": 100000.0}),
                  Snapshot("bat2", K.BATTERY, t, {"power_w": -200.0, "soc": 0.8, "capacity_wh": 50000.0}),
                  Snapshot("meter1", K.METER, t, {"power_w": 4000.0}),
                  Snapshot("meter2", K.METER, t, {"power_w": 999.0}),  # a sub-meter: not the grid
                  Snapshot("ev1", K.EV_CHARGER, t, {"power_w": 1500.0})]
    # a bad reading inside minute 3: must not reach the sums, must be counted
    snaps.append(Snapshot("pv1", K.PV, t0 + timedelta(minutes=3, seconds=30), {"power_w": 1e9},
                          Quality.BAD, "out of range"))
    try:
        assert store.write_lines(store.encode_many(snaps)).written == len(snaps)
        start_ms = ts_ns(t0) // 1_000_000
        end_ms = start_ms + 10 * 60_000 - 1
        dash = json.loads(DASHBOARD.read_text())
        results: dict[tuple[str, str], list[dict]] = {}
        for p in dash["panels"]:
            for t in p["targets"]:
                body = influxd.query(_grafana_expand(t["query"], start_ms, end_ms), db="deploy_dashboard")
                res = body["results"][0]
                assert "error" not in res, (p["title"], t["refId"], res)
                assert res.get("series"), (p["title"], t["refId"], "no data")
                results[(p["title"], t["refId"])] = res["series"]
        for v in dash["templating"]["list"]:
            if v["type"] == "query":
                res = influxd.query(v["query"].replace("$site", "izumi"), db="deploy_dashboard")["results"][0]
                got = {row[1] for s in res["series"] for row in s["values"]}
                assert got == ({"izumi"} if v["name"] == "site" else {"meter1", "meter2"})
    finally:
        store.close()

    def only(key) -> dict[str, float]:
        (s,) = results[key]
        vals = {row[1] for row in s["values"]}
        assert len(s["values"]) == 10 and len(vals) == 1, (key, s["values"])
        return {s["columns"][1]: vals.pop()}

    assert only(("Site power", "A")) == {"PV": 3000.0}
    assert only(("Site power", "B")) == {"battery (+ discharge)": 300.0}
    assert only(("Site power", "C")) == {"grid (+ import)": 4000.0}
    assert only(("Site power", "D")) == {"EV charging": 1500.0}
    soc = {s["tags"]["device"]: {r[1] for r in s["values"]} for s in results[("Battery state of charge", "A")]}
    assert soc == {"bat1": {50.0}, "bat2": {80.0}}
    weighted = only(("Battery state of charge", "B"))["site (capacity-weighted)"]
    assert weighted == pytest.approx(60.0)
    assert only(("Battery state of charge", "C")) == {"reserve floor": 30.0}
    bad = results[("Readings not good", "A")]
    counts = {(s["name"], s["tags"]["device"]): sum(r[1] for r in s["values"] if r[1]) for s in bad}
    assert counts == {("pv", "pv1"): 1}
