#!/usr/bin/env python3
"""Checks the docs (run by scripts/test-docs.sh; standard library only).

1. Runs docs/quickstart.md for real: every fenced ``sh`` block, in order,
   against a fresh server on a free port and a fresh SQLite file, with the
   placeholders the reader fills in (``sp_live_…``, ``whsec_…``, ``inc_…``,
   ``rep_…``) replaced by the values the earlier blocks printed, and checks
   what each step promises (incident opened, resolved, proof page, look-ups).
2. Checks that every relative link between the docs (README.md, docs/*.md,
   examples/**/README.md) resolves to a file, and every #anchor to a heading.
3. Checks docs/api.md against docs/openapi.json (scripts/render-api-docs.py --check).
   Checks that every source path the docs name as a test or as code
   (``sendpromptly-server/tests/alerts.rs::some_test``) is relative to the
   repository root, exists, and has the named function: a path like
   ``tests/alerts.rs`` is ambiguous between ``tests/`` and a crate's tests.
   In docs/guarantees.md and docs/benchmarks.md, which cite code as
   evidence, a bare file name (``secrets.rs``) is refused for the same reason.
4. Runs docs/self-hosting.md's operator recipes that can run here: the
   systemd unit passes ``systemd-analyze verify`` (when systemd-analyze is
   installed) and its ExecStart command, with the documented TOML file, starts
   the server; the documented online SQLite backup of that live server's
   database opens, passes its integrity check and holds the data, and a server
   started on the copy serves it; ``sendpromptly migrate`` and the "older
   binary refuses a newer database" promise; the monitoring endpoints.
   (Not here: the release build, ``useradd``/``systemctl``, a TLS proxy.)
"""

import glob
import json
import shlex
import sqlite3
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ["SENDPROMPTLY_BIN"]
# Docs another change is writing; a link to them warns until they land.
# Remove an entry once its file exists.
BEING_WRITTEN: set = set()


def fail(msg):
    print(f"test-docs: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh_blocks(path):
    text = open(path).read()
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)


def poll(what, check, timeout=30):
    start = time.time()
    while time.time() - start < timeout:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def quickstart():
    blocks = sh_blocks(os.path.join(ROOT, "docs", "quickstart.md"))
    if len(blocks) < 10:
        fail(f"docs/quickstart.md has only {len(blocks)} sh blocks; did its structure change?")
    tmp = tempfile.mkdtemp(prefix="sendpromptly-docs-")
    sp_port, listen_port = free_port(), free_port()
    env = dict(os.environ, SENDPROMPTLY_LISTEN=f"127.0.0.1:{sp_port}", SENDPROMPTLY_LOG="warn")
    values = {}
    procs = []

    def adapt(block):
        block = block.replace("cargo run --bin sendpromptly --", f'"{BIN}"')
        block = block.replace("127.0.0.1:7700", f"127.0.0.1:{sp_port}")
        block = block.replace("listen --secret", f"listen --listen 127.0.0.1:{listen_port} --secret")
        block = block.replace("127.0.0.1:7701", f"127.0.0.1:{listen_port}")
        for placeholder, key in (("sp_live_…", "KEY"), ("whsec_…", "SECRET"), ("inc_…", "INC"), ("rep_…", "REP")):
            if placeholder in block:
                if key not in values:
                    fail(f"a block uses {placeholder} before the doc showed where it comes from:\n{block}")
                block = block.replace(placeholder, values[key])
        return block

    def run(block):
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            fail(f"block exited {out.returncode}:\n{block}\n{out.stdout}{out.stderr}")
        return out.stdout

    def api(path):
        req = urllib.request.Request(f"http://127.0.0.1:{sp_port}{path}",
                                     headers={"Authorization": f"Bearer {values['KEY']}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    try:
        for n, raw in enumerate(blocks, 1):
            block = adapt(raw)
            first = raw.strip().splitlines()[0]
            print(f"  block {n}: {first[:90]}", flush=True)
            if " serve" in raw and "cargo run" in raw:
                log = open(os.path.join(tmp, "serve.out"), "w+")
                procs.append(subprocess.Popen(["bash", "-c", "exec " + block], cwd=tmp, env=env,
                                              stdout=log, stderr=subprocess.STDOUT))

                def banner():
                    log.seek(0)
                    text = log.read()
                    return text if "is listening on" in text else None
                text = poll("the server to start", banner)
                values["KEY"] = re.search(r"API key:\s+(\S+)", text).group(1)
                values["SECRET"] = re.search(r"signing secret:\s+(\S+)", text).group(1)
            elif " listen " in raw and "cargo run" in raw:
                procs.append(subprocess.Popen(["bash", "-c", "exec " + block], cwd=tmp, env=env,
                                              stdout=open(os.path.join(tmp, "listen.out"), "w"),
                                              stderr=subprocess.STDOUT))
                poll("the listen endpoint", lambda: socket.socket().connect_ex(("127.0.0.1", listen_port)) == 0)
            elif "export KEY=" in raw:
                run(block)  # the reader's exports, with the values serve printed
                env.update(KEY=values["KEY"], SECRET=values["SECRET"], SP=f"http://127.0.0.1:{sp_port}")
            elif "incidents?state=open" in raw and "INC" not in raw:
                # "Wait five seconds, then": the incident opens at the deadline.
                poll("the missing_result incident", lambda: api("/v1/incidents?state=open")["data"])
                data = json.loads(run(block))["data"]
                if [i["kind"] for i in data] != ["missing_result"]:
                    fail(f"expected one missing_result incident, got {data}")
                values["INC"] = data[0]["id"]
            elif "export INC=" in raw:
                run(block)
                env["INC"] = values["INC"]
                detail = json.loads(run(block.split("\n", 1)[1]))
                if detail["incident"]["id"] != values["INC"] or not detail["timeline"]:
                    fail(f"GET /v1/incidents/$INC did not show the incident and its timeline: {detail}")
            elif "/reprocess" in raw:
                answer = json.loads(run(block))
                values["REP"] = answer["reprocess_id"]
                poll("the callback at the listen endpoint",
                     lambda: "rep_" in open(os.path.join(tmp, "listen.out")).read())
            elif '"reprocess_id"' in raw:
                run(block)
                inc = api(f"/v1/incidents/{values['INC']}")["incident"]
                if (inc["state"], inc["resolution"]) != ("resolved", "success_result"):
                    fail(f"after the success result the incident is {inc['state']}/{inc['resolution']}")
            elif '"status": "failure"' in raw:
                run(block)
                ev = api("/v1/events/stripe/evt_2")
                if not ev["incident"] or ev["incident"]["kind"] != "failed_result":
                    fail(f"the failure result did not open a failed_result incident: {ev}")
            elif "/proof-links" in raw:
                link = json.loads(run(block))
                with urllib.request.urlopen(link["url"], timeout=5) as resp:
                    if resp.status != 200:
                        fail(f"the proof link answered {resp.status}")
            elif "/v1/events" in raw:
                out = run(block)
                if out.count("evt_1Q2w3E") < 2:
                    fail(f"the look-ups did not find evt_1Q2w3E:\n{out}")
            else:
                out = run(block)
                if out.strip().startswith("{") and '"error"' in out:
                    fail(f"block answered an error:\n{block}\n{out}")
        print(f"  docs/quickstart.md: {len(blocks)} blocks ran against a real server")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def fenced(path, lang):
    text = open(path).read()
    return [textwrap.dedent(b) for b in re.findall(r"^ *```" + lang + r"\n(.*?)^ *```", text, flags=re.S | re.M)]


def start_serve(argv, cwd, env, log_path):
    """Starts a server; returns (process, its stdout so far) once it listens."""
    log = open(log_path, "w+")
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def banner():
        log.seek(0)
        text = log.read()
        if proc.poll() is not None:
            fail(f"{shlex.join(argv)} exited {proc.returncode}:\n{text}")
        return text if "is listening on" in text else None
    return proc, poll("the server to start", banner)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("the server did not stop within 15 s of SIGTERM")


def self_hosting():
    doc = os.path.join(ROOT, "docs", "self-hosting.md")
    tomls, units, shs = fenced(doc, "toml"), fenced(doc, "ini"), fenced(doc, "sh")
    if len(tomls) != 1 or len(units) != 1:
        fail(f"docs/self-hosting.md: expected one toml and one ini block, found {len(tomls)} and {len(units)}")
    backup = [b for b in shs if ".backup" in b]
    if len(backup) != 1:
        fail("docs/self-hosting.md: no sh block with the sqlite3 .backup command")
    tmp = tempfile.mkdtemp(prefix="sendpromptly-selfhost-")
    procs = []
    try:
        # The unit: systemd's own check, with the binary where the unit expects it.
        unit = units[0]
        exec_start = re.search(r"^ExecStart=(.*)$", unit, flags=re.M).group(1).split()
        if exec_start[0] != "/usr/local/bin/sendpromptly" or exec_start[1:3] != ["--config", "/etc/sendpromptly.toml"]:
            fail(f"the unit's ExecStart is not the documented command: {exec_start}")
        state_dir = re.search(r"^StateDirectory=(.*)$", unit, flags=re.M).group(1).strip()
        unit_dir = os.path.join(tmp, "unit")
        os.makedirs(unit_dir)
        with open(os.path.join(unit_dir, "sendpromptly.service"), "w") as f:
            f.write(unit.replace("/usr/local/bin/sendpromptly", BIN))
        if shutil.which("systemd-analyze"):
            out = subprocess.run(["systemd-analyze", "verify", os.path.join(unit_dir, "sendpromptly.service")],
                                 capture_output=True, text=True)
            if out.returncode != 0 or out.stderr.strip():
                fail(f"systemd-analyze verify rejects the unit:\n{out.stdout}{out.stderr}")
            print("  docs/self-hosting.md: systemd-analyze verify accepts the unit")
        else:
            print("  warning: systemd-analyze not installed; the unit file is not verified (its command still runs)")

        # The TOML file, pointed at a temporary state directory and a free port.
        config = tomls[0]
        db_path = re.search(r'^database_url = "sqlite://(.*)"$', config, flags=re.M).group(1)
        if os.path.dirname(db_path) != f"/var/lib/{state_dir}":
            fail(f"the database {db_path} is not in the unit's StateDirectory /var/lib/{state_dir}")
        state = os.path.join(tmp, "var-lib-sendpromptly")
        os.makedirs(state)
        db = os.path.join(state, os.path.basename(db_path))
        port = free_port()
        config = config.replace(db_path, db)
        config = re.sub(r'^listen = ".*"$', f'listen = "127.0.0.1:{port}"', config, flags=re.M)
        config_path = os.path.join(tmp, "sendpromptly.toml")
        with open(config_path, "w") as f:
            f.write(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENDPROMPTLY_")}
        argv = [BIN] + [config_path if a == "/etc/sendpromptly.toml" else a for a in exec_start[1:]]
        proc, text = start_serve(argv, tmp, env, os.path.join(tmp, "serve.out"))
        procs.append(proc)
        key = re.search(r"API key:\s+(\S+)", text).group(1)
        base = f"http://127.0.0.1:{port}"

        def call(path, body=None, url=base):
            req = urllib.request.Request(f"{url}{path}", data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {key}", "content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()

        status, _ = call("/v1/receipt", {"provider": "stripe", "event_id": "evt_backup_1", "event_type": "invoice.paid",
                                          "subject": "cus_backup"})
        if status != 201:
            fail(f"the receipt answered {status}")
        call("/v1/result", {"provider": "stripe", "event_id": "evt_backup_1", "status": "failure", "error": "x"})
        status, metrics = call("/metrics")
        for name in ("sendpromptly_sweeper_lag_seconds", "sendpromptly_callbacks_pending"):
            if name not in metrics:
                fail(f"/metrics has no {name}, which docs/self-hosting.md says to alert on")
        if call("/healthz")[0] != 200:
            fail("/healthz did not answer 200")
        print("  docs/self-hosting.md: the unit's ExecStart with the documented TOML serves; /healthz and /metrics as documented")

        # The documented online backup, against the live server's database.
        backups = os.path.join(tmp, "backups")
        os.makedirs(backups)
        if not shutil.which("sqlite3"):
            fail("the sqlite3 shell is not installed (apt-get install sqlite3)")
        script = backup[0].replace(os.path.dirname(db_path) + "/", state + "/").replace("/backups/", backups + "/")
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp, capture_output=True, text=True, timeout=60)
        if out.returncode != 0 or out.stdout.strip() != "ok":
            fail(f"the backup commands failed or the integrity check is not ok:\n{script}\n{out.stdout}{out.stderr}")
        copies = glob.glob(os.path.join(backups, "sendpromptly-*.db"))
        if len(copies) != 1:
            fail(f"the backup command made {copies}")
        with sqlite3.connect(copies[0]) as conn:
            rows = conn.execute("SELECT state FROM events WHERE event_id = 'evt_backup_1'").fetchall()
            incidents = conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
        if rows != [("failed",)] or incidents != 1:
            fail(f"the backup does not hold the data: events {rows}, incidents {incidents}")
        stop(procs.pop())

        # Restore: a server on the copy serves the same event.
        restored_port = free_port()
        restored = os.path.join(tmp, "restored.db")
        shutil.copy(copies[0], restored)
        keys = glob.glob(os.path.join(backups, "*.secret-key"))
        if len(keys) != 1:
            fail(f"the documented backup does not save the master key (found {keys}): a restore could not sign")
        shutil.copy(keys[0], restored + ".secret-key")
        os.chmod(restored + ".secret-key", 0o600)
        proc, _ = start_serve([BIN, "--database-url", f"sqlite://{restored}", "serve", "--listen", f"127.0.0.1:{restored_port}"],
                              tmp, env, os.path.join(tmp, "restored.out"))
        procs.append(proc)
        status, body = call("/v1/events/stripe/evt_backup_1", url=f"http://127.0.0.1:{restored_port}")
        if status != 200 or json.loads(body)["incident"]["kind"] != "failed_result":
            fail(f"the restored copy does not serve the event: {status} {body}")
        stop(procs.pop())
        print("  docs/self-hosting.md: the online backup of a live database opens, is intact, holds the data and serves it")

        # Upgrades: `migrate` alone, and an older binary refuses a newer database.
        fresh = f"sqlite://{os.path.join(tmp, 'fresh.db')}"
        out = subprocess.run([BIN, "--database-url", fresh, "migrate"], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            fail(f"sendpromptly migrate failed: {out.stderr}")
        with sqlite3.connect(restored) as conn:
            conn.execute("INSERT INTO _sendpromptly_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', 0)")
        out = subprocess.run([BIN, "--database-url", f"sqlite://{restored}", "serve", "--listen", "127.0.0.1:0"],
                             capture_output=True, text=True, env=env, timeout=60)
        if out.returncode == 0 or "upgrade this binary" not in out.stdout + out.stderr:
            fail(f"a binary older than the database did not refuse to start: {out.returncode}\n{out.stdout}{out.stderr}")
        print("  docs/self-hosting.md: migrate runs alone; an older binary refuses a newer database")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def links():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "CHANGELOG.md")]
    files += glob.glob(os.path.join(ROOT, "docs", "*.md"))
    files += glob.glob(os.path.join(ROOT, "examples", "**", "README.md"), recursive=True)
    bad = []
    count = 0
    for path in files:
        text = open(path).read()
        text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # no links inside code
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            count += 1
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest) and os.path.relpath(dest, ROOT) in BEING_WRITTEN:
                print(f"  warning: {os.path.relpath(path, ROOT)} links {target}, not written yet")
                continue
            if not os.path.exists(dest):
                bad.append(f"{os.path.relpath(path, ROOT)}: {target} (no such file)")
                continue
            if anchor and dest.endswith(".md"):
                headings = re.findall(r"^#+ (.*)$", open(dest).read(), flags=re.M)
                if anchor not in {slug(h) for h in headings}:
                    bad.append(f"{os.path.relpath(path, ROOT)}: {target} (no such heading)")
    if bad:
        fail("broken links:\n  " + "\n  ".join(bad))
    print(f"  links: {count} relative links in {len(files)} files resolve")


# A backticked Rust source path, optionally with `::function`.
SOURCE_PATH = re.compile(r"`((?:[\w.-]+/)*(?:tests|src|benches)/[\w./-]+\.rs)(?:::(\w+))?")
# A backticked bare Rust file name (`secrets.rs`): which crate's?
BARE_FILE = re.compile(r"`([\w-]+\.rs)(?:::\w+)?`")
# The docs that cite tests and code as evidence: every file there is named
# by its path from the repository root.
EVIDENCE_DOCS = ("docs/guarantees.md", "docs/benchmarks.md")


def source_paths():
    files = glob.glob(os.path.join(ROOT, "docs", "*.md")) + [os.path.join(ROOT, "README.md")]
    bad = []
    count = 0
    for path in sorted(files):
        text = open(path).read()
        for file_part, function in SOURCE_PATH.findall(text):
            count += 1
            where = f"{os.path.relpath(path, ROOT)}: `{file_part}`"
            dest = os.path.join(ROOT, file_part)
            if not os.path.isfile(dest):
                crates = [c for c in glob.glob(os.path.join(ROOT, "*", file_part)) if os.path.isfile(c)]
                hint = f"; did you mean `{os.path.relpath(crates[0], ROOT)}`?" if crates else ""
                bad.append(f"{where} is not a file relative to the repository root{hint}")
                continue
            if function and not re.search(rf"\bfn {function}\b", open(dest).read()):
                bad.append(f"{where} has no function `{function}`")
        if os.path.relpath(path, ROOT) in EVIDENCE_DOCS:
            for name in BARE_FILE.findall(text):
                found = sorted(
                    os.path.relpath(f, ROOT)
                    for f in glob.glob(os.path.join(ROOT, "**", name), recursive=True)
                    if "/target/" not in f
                )
                hint = f" (one of: {', '.join(found)})" if found else ""
                bad.append(
                    f"{os.path.relpath(path, ROOT)}: `{name}` names no crate; "
                    f"write its path from the repository root{hint}"
                )
    if bad:
        fail("source paths in the docs:\n  " + "\n  ".join(bad))
    print(f"  source paths: {count} test and code paths in the docs exist")


def api_reference():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "render-api-docs.py"), "--check"])
    if out.returncode != 0:
        fail("docs/api.md drifted from docs/openapi.json")
    print("  docs/api.md matches docs/openapi.json")


if __name__ == "__main__":
    links()
    source_paths()
    api_reference()
    quickstart()
    self_hosting()
    print("test-docs: passed")
