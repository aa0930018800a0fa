#!/usr/bin/env python3
"""Opt-in check: install the pack the way users do, with ComfyUI-Manager's "Install via Git URL", into a real
ComfyUI, restart, and check that the nodes load, the requirements are installed and torch is untouched.

    python3 tools/manager_install_check.py 0.33   --manager-git DIR     # ComfyUI-new + comfy-new-venv
    python3 tools/manager_install_check.py 0.3.64 --manager-git DIR     # ComfyUI + comfy-venv

DIR is a git dir (a clone or a bare snapshot) of github Comfy-Org/ComfyUI-Manager (measured with 3.41). The
ComfyUI environments are the ones ../shared/comfy builds under $COMFY_ROOT (default
~/.cache/rationalrewards-comfy); the user's install is simulated in --work (default
$COMFY_ROOT/manager-check/<checkout name>), deleted and rebuilt on every run, so the shared venv is never touched:

1. the checkout's venv is copied (a user's venv; the pack's requirement ``diffusers``, which ComfyUI does not
   need, is removed from the copy so that the install has something to do); ``pip freeze`` is recorded;
2. ComfyUI-Manager is cloned into a fresh --base-directory's custom_nodes/, with a config.ini for offline use
   (network_mode = offline: no registry or channel downloads; allow_git_url_install = True, which "Install via
   Git URL" needs, as a user sets it); ComfyUI starts on 127.0.0.1 and the Manager installs its own
   requirements from PyPI at first start, as it does for users;
3. the pack's last commit is cloned to --work/src and handed to POST /customnode/install/git_url as
   ``file://localhost/...`` (the Manager accepts only URLs with a host; git clones that URL like any other);
4. POST /manager/reboot (the Manager's Restart button), and then: every pack node is in /object_info, no
   import failure in the log, every line of requirements.txt is satisfied in the venv, and the torch packages
   in ``pip freeze`` are exactly as before. Exit status 0 when all hold. Stdlib only.

Needs PyPI (the Manager's and the pack's requirements) and git. The log, the freezes and a summary stay in
--work; the venv copy is deleted at the end unless --keep.
"""
from __future__ import annotations

import argparse
import http.client as http_client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMFY_ROOT = Path(os.environ.get("COMFY_ROOT", Path.home() / ".cache" / "rationalrewards-comfy"))
ENVIRONMENTS = {"0.3.64": ("ComfyUI", "comfy-venv"), "0.33": ("ComfyUI-new", "comfy-new-venv")}
#: The Manager reads config.ini from user/__manager (ComfyUI with the system user API) or from
#: user/default/ComfyUI-Manager (older ComfyUI, e.g. 0.3.64); both are written.
CONFIG_DIRS = ("__manager", "default/ComfyUI-Manager")
CONFIG = """[default]
network_mode = offline
security_level = normal
allow_git_url_install = True
file_logging = False
"""
#: Removed from the venv copy so that the install has a requirement to install (ComfyUI does not need it).
REMOVED_FIRST = "diffusers"
PACK_NAME = "ComfyUI-RationalRewards"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list, **kw) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw).stdout


def http(url: str, body: dict | None = None, method: str | None = None, timeout: float = 30) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def pack_node_ids() -> set[str]:
    """The node ids the pack defines in nodes/: ``node_id="RationalRewards..."`` or ``node_id=NAME`` with
    ``NAME = "RationalRewards..."`` (read from the source: this script runs without the pack's dependencies)."""
    ids: set[str] = set()
    for f in (ROOT / "nodes").glob("*.py"):
        text = f.read_text()
        ids.update(re.findall(r'node_id="(RationalRewards\w+)"', text))
        for name in re.findall(r"node_id=([A-Z_]+)\b", text):
            ids.update(re.findall(rf'^{name} = "(RationalRewards\w+)"', text, re.M))
    return ids


def torch_lines(freeze: str) -> list[str]:
    return sorted(line for line in freeze.splitlines() if "torch" in line.lower())


UNSATISFIED = """
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        v = version(req.name)
    except PackageNotFoundError:
        bad.append(f"{req.name}: not installed")
        continue
    if v not in req.specifier:
        bad.append(f"{req.name} {v} does not satisfy {req.specifier}")
print("\\n".join(bad))
"""


class Comfy:
    """ComfyUI started from ``checkout`` with ``python`` in ``base``, its output in ``log``."""

    def __init__(self, checkout: Path, python: Path, base: Path, port: int, log: Path):
        self.checkout, self.python, self.base, self.port, self.log = checkout, python, base, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                "--base-directory", self.base, "--disable-auto-launch"]
        if "--database-url" in (self.checkout / "comfy" / "cli_args.py").read_text(errors="replace"):
            args += ["--database-url", f"sqlite:///{self.base / 'user' / 'comfyui.db'}"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([str(a) for a in args], cwd=self.checkout, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def wait_up(self, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"ComfyUI exited ({self.proc.returncode}); see {self.log}")
            try:
                if http(self.url + "/system_stats", timeout=3)[0] == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"ComfyUI did not answer in {timeout:.0f} s; see {self.log}")

    def wait_down(self, timeout: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                http(self.url + "/system_stats", timeout=2)
            except OSError:
                return
            time.sleep(0.2)
        raise SystemExit("ComfyUI did not restart (still answering)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def object_info(self) -> dict:
        code, text = http(self.url + "/object_info", timeout=120)
        assert code == 200, (code, text[:300])
        return json.loads(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("comfyui", help="0.3.64, 0.33, or a ComfyUI checkout (then give --venv)")
    ap.add_argument("--manager-git", required=True, type=Path, help="git dir of Comfy-Org/ComfyUI-Manager")
    ap.add_argument("--manager-ref", default="HEAD", help="commit or tag of the Manager to install (default HEAD)")
    ap.add_argument("--venv", type=Path, help="the checkout's venv (default: the one ../shared/comfy builds)")
    ap.add_argument("--work", type=Path, help="scratch folder (default $COMFY_ROOT/manager-check/<checkout>)")
    ap.add_argument("--port", type=int, default=8350)
    ap.add_argument("--keep", action="store_true", help="keep the venv copy and leave ComfyUI running")
    a = ap.parse_args(argv)

    if a.comfyui in ENVIRONMENTS:
        checkout, venv = (COMFY_ROOT / n for n in ENVIRONMENTS[a.comfyui])
    else:
        checkout, venv = Path(a.comfyui), a.venv
    venv = a.venv or venv
    if not (checkout / "main.py").is_file() or venv is None or not (venv / "bin" / "python").exists():
        raise SystemExit(f"need a ComfyUI checkout and its venv: {checkout}, {venv}")
    work = a.work or COMFY_ROOT / "manager-check" / checkout.name
    shutil.rmtree(work, ignore_errors=True)
    base, src = work / "base", work / "src" / PACK_NAME
    for sub in ("custom_nodes", "input", "output", "temp", *(f"user/{d}" for d in CONFIG_DIRS)):
        (base / sub).mkdir(parents=True, exist_ok=True)
    summary: dict = {"comfyui": str(checkout), "work": str(work)}

    say(f"copying the venv {venv} (the user's environment)")
    shutil.copytree(venv, work / "venv", symlinks=True)
    py = work / "venv" / "bin" / "python"
    assert run([py, "-c", "import sys; print(sys.prefix)"]).strip() == str(work / "venv")
    run([py, "-m", "pip", "uninstall", "-y", "-q", REMOVED_FIRST])
    freeze0 = run([py, "-m", "pip", "freeze"])
    (work / "freeze-0-start.txt").write_text(freeze0)

    mgr = base / "custom_nodes" / "ComfyUI-Manager"
    run(["git", "clone", "-q", a.manager_git, mgr])
    if a.manager_ref != "HEAD":
        run(["git", "-C", mgr, "checkout", "-q", a.manager_ref])
    m = re.search(r'^version = "([^"]+)"', (mgr / "pyproject.toml").read_text(), re.M)
    summary["manager"] = f"{m.group(1) if m else '?'} ({run(['git', '-C', mgr, 'rev-parse', '--short', 'HEAD']).strip()})"
    for d in CONFIG_DIRS:
        (base / "user" / d / "config.ini").write_text(CONFIG)
    run(["git", "clone", "-q", "--no-hardlinks", ROOT, src])
    summary["pack_commit"] = run(["git", "-C", src, "rev-parse", "--short", "HEAD"]).strip()
    url = f"file://localhost{src}"
    say(f"ComfyUI-Manager {summary['manager']}; the pack at {summary['pack_commit']} as {url}")

    comfy = Comfy(checkout, py, base, a.port, work / "comfy.log")
    ok = False
    try:
        comfy.start()
        summary["first_start_s"] = round(comfy.wait_up(900), 1)  # the Manager pip-installs its requirements
        code, version = http(comfy.url + "/manager/version")
        assert code == 200, f"ComfyUI-Manager did not load ({code}); see {comfy.log}"
        summary["manager_reported"] = version.strip()
        assert not pack_node_ids() & set(comfy.object_info()), "the pack is already there"
        freeze1 = run([py, "-m", "pip", "freeze"])
        (work / "freeze-1-manager.txt").write_text(freeze1)
        say(f"up in {summary['first_start_s']} s with ComfyUI-Manager {version.strip()}; installing the pack")

        t0 = time.monotonic()
        code, text = http(comfy.url + "/customnode/install/git_url", {"url": url}, timeout=900)
        summary["install"] = {"status": code, "seconds": round(time.monotonic() - t0, 1), "body": text[:300]}
        assert code == 200, f"install via git URL failed: {code} {text[:500]}; see {comfy.log}"
        assert (base / "custom_nodes" / PACK_NAME / "__init__.py").is_file(), "nothing cloned"

        say("restarting through the Manager (POST /manager/reboot)")
        try:
            code, text = http(comfy.url + "/manager/reboot", {}, timeout=30)
        except (OSError, http_client.HTTPException):  # it re-executes ComfyUI before answering
            code, text = 200, "(connection closed: restarting)"
        summary["reboot_status"] = code
        if code == 200:
            comfy.wait_down(60)
        else:  # the Manager refuses to restart at some security levels: restart by hand, as a user would
            say(f"reboot refused ({code}: {text[:200]}); restarting by hand")
            comfy.stop()
            comfy.start()
        summary["restart_s"] = round(comfy.wait_up(600), 1)

        info = comfy.object_info()
        ids = pack_node_ids()
        log = comfy.log.read_text(errors="replace")
        failed = [ln for ln in log.splitlines() if ("IMPORT FAILED" in ln or "Cannot import" in ln)
                  and (PACK_NAME in ln or "RationalRewards" in ln)]
        freeze2 = run([py, "-m", "pip", "freeze"])
        (work / "freeze-2-installed.txt").write_text(freeze2)
        missing_reqs = run([py, "-c", UNSATISFIED, src / "requirements.txt"]).strip()
        before = set(freeze0.splitlines())
        summary.update(
            pack_nodes=f"{len(ids & set(info))}/{len(ids)}",
            missing_nodes=sorted(ids - set(info)),
            pack_import_failures=failed,
            unsatisfied_requirements=missing_reqs.splitlines(),
            torch_before=torch_lines(freeze0), torch_after=torch_lines(freeze2),
            added_by_manager_start=sorted(set(freeze1.splitlines()) - before),
            added_by_pack_install=sorted(set(freeze2.splitlines()) - set(freeze1.splitlines())),
            removed_or_changed=sorted(before - set(freeze2.splitlines())),
        )
        ok = (not summary["missing_nodes"] and not failed and not missing_reqs and summary["torch_before"] == summary["torch_after"])
    finally:
        summary["ok"] = ok
        (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(json.dumps(summary, indent=1))
        if not a.keep:
            comfy.stop()
            shutil.rmtree(work / "venv", ignore_errors=True)
    say(("PASS" if ok else "FAIL") + f": summary in {work / 'summary.json'}, log in {comfy.log}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
