"""Opt-in: load the pack into a real ComfyUI and run the workflows whose models can be tiny, through the HTTP API.

Skipped unless these environment variables are set (nothing is downloaded; see ../shared/comfy/README.md for
building ComfyUI 0.3.64, its venv and the tiny models):

    RATIONALREWARDS_COMFYUI         a ComfyUI checkout (the folder with main.py)
    RATIONALREWARDS_COMFY_PYTHON    its Python (default: the checkout's own venv/ or .venv/, else the venv
                                    beside it named after it, as ../shared/comfy builds them: ComfyUI ->
                                    comfy-venv, ComfyUI-new -> comfy-new-venv; else this Python)
    RATIONALREWARDS_TINY_CRITIC     a tiny Qwen3-VL critic folder (default: tiny-critic-canned, else
                                    tiny-critic, in <checkout>/models/rationalrewards/ or beside the checkout)
    RATIONALREWARDS_TINY_SD15       a tiny SD1.5 checkpoint file (default: <checkout>/models/checkpoints/
                                    tiny-sd15.safetensors)
    RATIONALREWARDS_COMFY_PORT      the port the server listens on (default: a free one)

tools/comfy_real_test.sh 0.3.64 | 0.33 sets them for the environments ../shared/comfy builds (one command each).

The server runs with --cpu in a temporary --base-directory (and, where the version has the flag, its own
--database-url there: ComfyUI otherwise opens <checkout>/user/comfyui.db, shared by every server of the
checkout): custom_nodes/ holds a link to this checkout, models/checkpoints and models/rationalrewards links to
the tiny models, input/ a test picture. Each workflow is converted from its UI format to the API format with the
server's /object_info (same widget layout as the frontend, tests/workflow_check.py), shrunk (128 px, 2 steps,
2 iterations, short critiques) and run to the end.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_check import FRONTEND_ONLY, widget_layout  # noqa: E402

COMFY = os.environ.get("RATIONALREWARDS_COMFYUI")
pytestmark = pytest.mark.skipif(not COMFY or not (Path(COMFY) / "main.py").is_file(),
                                reason="set RATIONALREWARDS_COMFYUI to a ComfyUI checkout to run")
TINY_WORKFLOWS = ["critique_image", "t2i_one_refine_step", "simple_loop_early_stop", "best_of_n", "pairwise_ab"]
#: What makes a workflow tiny: {class_type: {input: value}} (only inputs the node has and that are not linked).
SHRINK = {
    "EmptyLatentImage": {"width": 128, "height": 128},
    "KSampler": {"steps": 2},
    "RationalRewardsSimpleLoop": {"width": 128, "height": 128, "steps": 2, "max_iterations": 2},
    "RationalRewardsModelLoader": {"dtype": "fp32", "device": "cpu", "batch_size": 2},
    "RationalRewardsCritic": {"max_new_tokens": 128},
    "RationalRewardsCompare": {"max_new_tokens": 128},
    "RationalRewardsBestOfN": {"max_new_tokens": 128},
}


def _first_existing(*paths: Path | str | None) -> Path | None:
    return next((Path(p) for p in paths if p and Path(p).exists()), None)


def comfy_python(checkout: Path) -> Path:
    """The Python that runs ``checkout``: RATIONALREWARDS_COMFY_PYTHON, else the checkout's own venv, else the
    venv beside it named after it (ComfyUI -> comfy-venv, ComfyUI-new -> comfy-new-venv), else this Python."""
    sibling = "comfy" + checkout.name[len("ComfyUI"):].lower() + "-venv" if checkout.name.startswith("ComfyUI") else None
    return _first_existing(os.environ.get("RATIONALREWARDS_COMFY_PYTHON"),
                           checkout / "venv" / "bin" / "python", checkout / ".venv" / "bin" / "python",
                           checkout.parent / sibling / "bin" / "python" if sibling else None) or Path(sys.executable)


def server_args(checkout: Path, base: Path, port: int) -> list[str]:
    """main.py's arguments for a test server of ``checkout`` in ``base`` (its own database where the version
    has --database-url; the folder must exist)."""
    args = ["--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
            "--disable-auto-launch"]
    cli = checkout / "comfy" / "cli_args.py"
    if cli.is_file() and "--database-url" in cli.read_text(errors="replace"):
        args += ["--database-url", f"sqlite:///{base / 'user' / 'comfyui.db'}"]
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(url: str, data: dict | None = None, timeout: float = 30) -> dict:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if body.strip() else {}  # /free and /interrupt answer with no body
    except urllib.error.HTTPError as e:  # validation errors come back as 400 with node_errors
        raise AssertionError(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')[:4000]}") from None


class Server:
    """A ComfyUI process with this pack, in its own base directory."""

    def __init__(self, base: Path):
        comfy = Path(COMFY).resolve()
        self.python = comfy_python(comfy)
        critic = _first_existing(os.environ.get("RATIONALREWARDS_TINY_CRITIC"),
                                 *(d / name for name in ("tiny-critic-canned", "tiny-critic")
                                   for d in (comfy / "models" / "rationalrewards", comfy.parent)))
        sd15 = _first_existing(os.environ.get("RATIONALREWARDS_TINY_SD15"),
                               comfy / "models" / "checkpoints" / "tiny-sd15.safetensors")
        if critic is None or sd15 is None:
            pytest.skip("no tiny critic / tiny SD1.5 (set RATIONALREWARDS_TINY_CRITIC / RATIONALREWARDS_TINY_SD15)")
        self.critic_name, self.ckpt_name = "tiny-critic", "tiny-sd15.safetensors"
        # A "canned" tiny critic (../shared/comfy/make_tiny_critic.py --canned) answers every text-to-image
        # request with one fixed, well-formed critique (2.5 / 3.0 / N/A and a refined prompt), so the
        # runs can check real parsed scores and refined prompts, not only that the graph executes.
        info = critic / "tiny_critic_info.json"
        self.canned = json.loads(info.read_text()).get("canned_texts") if info.is_file() else None
        for sub in ("custom_nodes", "input", "output", "temp", "user", "models/checkpoints",
                    "models/rationalrewards"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "custom_nodes" / "ComfyUI-RationalRewards").symlink_to(ROOT, target_is_directory=True)
        (base / "models" / "checkpoints" / self.ckpt_name).symlink_to(sd15.resolve())
        (base / "models" / "rationalrewards" / self.critic_name).symlink_to(critic.resolve(), target_is_directory=True)
        from PIL import Image

        Image.new("RGB", (96, 96), (200, 90, 40)).save(base / "input" / "example.png")
        self.base, self.port = base, int(os.environ.get("RATIONALREWARDS_COMFY_PORT") or _free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / "comfy.log"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [str(self.python), "main.py", *server_args(comfy, base, self.port)],
                cwd=comfy, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + float(os.environ.get("RATIONALREWARDS_COMFY_WAIT", "240"))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ComfyUI exited during startup:\n{self.log_text()[-4000:]}")
            try:
                _http(self.url + "/system_stats", timeout=2)
                return
            except (OSError, AssertionError):
                time.sleep(0.5)
        self.stop()
        raise AssertionError(f"ComfyUI did not answer in time:\n{self.log_text()[-4000:]}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def run(self, prompt: dict, workflow: dict | None, timeout: float = 600) -> dict:
        """POST an API prompt (with the UI workflow as PNG info), wait for its history entry."""
        return self.wait(self.submit(prompt, workflow), timeout)

    def submit(self, prompt: dict, workflow: dict | None) -> str:
        """POST an API prompt (with the UI workflow as PNG info); its prompt id."""
        body = {"prompt": prompt, "client_id": uuid.uuid4().hex, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
        return _http(self.url + "/prompt", body)["prompt_id"]

    def wait(self, pid: str, timeout: float = 600) -> dict:
        """The history entry of prompt ``pid`` once it has finished (successfully or not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = _http(f"{self.url}/history/{pid}")
            if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
                return hist[pid]
            if pid in hist and hist[pid].get("status", {}).get("status_str") == "error":
                return hist[pid]
            time.sleep(0.5)
        raise AssertionError(f"prompt {pid} did not finish in {timeout}s; log tail:\n{self.log_text()[-3000:]}")


def to_api(wf: dict, object_info: dict) -> dict:
    """UI workflow -> API prompt, as the frontend's graphToPrompt does for our files (no reroutes/primitives
    widgets; Note nodes dropped; a linked widget input takes the link)."""
    prompt = {}
    for node in wf["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) == 2:
            continue
        inputs = {}
        for (name, kind), value in zip(widget_layout(object_info[node["type"]]), node.get("widgets_values") or []):
            if kind == "value":
                inputs[name] = {"__value__": value} if isinstance(value, list) else value
        links = {lk[0]: lk for lk in wf["links"]}
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None:
                lk = links[slot["link"]]
                inputs[slot["name"]] = [str(lk[1]), lk[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title") or node["type"]}}
    return prompt


def shrink(prompt: dict, server: Server) -> dict:
    """Substitute the tiny models and small sizes (only unlinked inputs the node has)."""
    subs = dict(SHRINK)
    if server.canned:  # room for the whole canned critique (about 160 of its tokens)
        for cls in ("RationalRewardsCritic", "RationalRewardsCompare", "RationalRewardsBestOfN"):
            subs[cls] = {"max_new_tokens": 512}
    subs["CheckpointLoaderSimple"] = {"ckpt_name": server.ckpt_name}
    subs["RationalRewardsModelLoader"] = {**SHRINK["RationalRewardsModelLoader"], "model": server.critic_name}
    for node in prompt.values():
        for name, value in subs.get(node["class_type"], {}).items():
            if name in node["inputs"] and not isinstance(node["inputs"][name], list):
                node["inputs"][name] = value
    return prompt


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("comfy"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def object_info(server):
    return _http(server.url + "/object_info", timeout=120)


def test_pack_loads_with_every_node(server, object_info, comfy):
    expected = {cls.GET_SCHEMA().node_id for cls in comfy.NODES}
    assert expected <= set(object_info), sorted(expected - set(object_info))
    log = server.log_text()
    failed = [line for line in log.splitlines() if ("IMPORT FAILED" in line or "Cannot import" in line)
              and ("RationalRewards" in line or str(ROOT) in line)]
    assert not failed, "\n".join(failed) + "\n" + log[-3000:]
    assert "Failed to initialize database" not in log  # each server has its own --database-url
    assert server.critic_name in object_info["RationalRewardsModelLoader"]["input"]["required"]["model"][1]["options"]


@pytest.mark.parametrize("stem", TINY_WORKFLOWS)
def test_workflow_runs_to_the_end(server, object_info, stem):
    wf = json.loads((ROOT / "workflows" / f"{stem}.json").read_text())
    prompt = shrink(to_api(wf, object_info), server)
    entry = server.run(prompt, wf)
    status = entry.get("status", {})
    errors = [m for m in status.get("messages", []) if m[0] == "execution_error"]
    assert status.get("status_str") == "success" and status.get("completed"), json.dumps(errors, indent=1)[:6000]
    outputs = entry.get("outputs", {})
    image_nodes = [nid for nid, n in prompt.items() if n["class_type"] in ("SaveImage", "PreviewImage")]
    assert image_nodes and all(outputs.get(nid, {}).get("images") for nid in image_nodes), outputs.keys()
    for nid, n in prompt.items():  # Preview Any shows text (the loop's history, the A/B winner)
        if n["class_type"] == "PreviewAny":
            text = outputs.get(nid, {}).get("text")
            assert text and text[0], (nid, outputs.get(nid))
            print(f"{stem}: {n['_meta']['title']}: {text[0][:300]}")
    if stem == "simple_loop_early_stop":
        history = json.loads(next(outputs[nid]["text"][0] for nid, n in prompt.items()
                                  if n["class_type"] == "PreviewAny"))
        print(f"{stem}: history keys {sorted(history)}")
        if server.canned:  # 2.5 / 3.0 / N/A: overall (2.75 - 1) / 3, and the prompt is refined
            first = history["history"][0]
            assert abs(first["overall"] - 1.75 / 3) < 1e-6, first
            assert first["decision"]["changed"] is True
            assert history["history"][1]["prompt"].startswith("A detailed photo of the requested subject")


def test_graph_loop_around_an_sd15_body(server, object_info):
    """Loop Start / Loop End around CLIPTextEncode -> KSampler -> VAEDecode (tiny SD1.5): three
    iterations through node expansion; the checkpoint loader outside the body runs once."""
    prompt = json.loads((ROOT / "tests" / "fixtures" / "graph_loop_sd15_api.json").read_text())
    prompt["1"]["inputs"]["ckpt_name"] = server.ckpt_name
    prompt["2"]["inputs"]["model"] = server.critic_name
    entry = server.run(prompt, None)
    status = entry.get("status", {})
    errors = [m for m in status.get("messages", []) if m[0] == "execution_error"]
    assert status.get("status_str") == "success", json.dumps(errors, indent=1)[:6000]
    outputs = entry.get("outputs", {})
    assert len(outputs["21"]["images"]) == 3  # all_images: one per iteration
    history = json.loads(outputs["22"]["text"][0])
    entries = history["history"] if isinstance(history, dict) else history
    assert len(entries) == 3
    assert [e["iteration"] for e in entries] == [0, 1, 2]
    if server.canned:  # the body really ran again with the critic's refined prompt
        assert entries[0]["prompt"] == "a red cube on a table"
        assert entries[1]["prompt"].startswith("A detailed photo of the requested subject")
        assert all(abs(e["overall"] - 1.75 / 3) < 1e-6 for e in entries)


def _post(server: Server, prompt: dict) -> tuple[int, dict]:
    """POST /prompt without raising: (HTTP status, JSON body)."""
    req = urllib.request.Request(server.url + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _loader_prompt(server: Server, **loader) -> dict:
    """Model Loader -> Critic -> Save Image (with critique) on the test picture."""
    inputs = dict(model=server.critic_name, dtype="fp32", attention="sdpa", quantization="none", device="cpu",
                  keep_resident=True, batch_size=1)
    return {
        "1": {"class_type": "RationalRewardsModelLoader", "inputs": {**inputs, **loader}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "3": {"class_type": "RationalRewardsCritic", "inputs": {"critic": ["1", 0], "image": ["2", 0], "prompt": "x",
                                                                 "seed": 1, "max_new_tokens": 64, "temperature": 0.0}},
        "4": {"class_type": "RationalRewardsSaveImage", "inputs": {"images": ["2", 0], "critique": ["3", 0],
                                                                   "filename_prefix": "rr_checks"}},
    }


def _loader_errors(status: int, body: dict) -> str:
    assert status == 400, (status, body)
    return json.dumps(body["node_errors"]["1"]["errors"])


def test_missing_critic_in_a_shared_workflow_says_where_to_put_it(server, object_info):
    """Newer ComfyUI checks combo values before running; the Model Loader checks the model name itself,
    so a critic this machine lacks is refused with the pack's message, not a bare 'Value not in list'."""
    errors = _loader_errors(*_post(server, _loader_prompt(server, model="RationalRewards-8B-T2I")))
    assert "Value not in list" not in errors, errors
    assert "'RationalRewards-8B-T2I' not found in" in errors and "models/rationalrewards" in errors, errors
    assert "hf download TIGER-Lab/RationalRewards-8B-T2I" in errors, errors


@pytest.mark.parametrize("name", ["../rationalrewards/{critic}", "{abs}", "../../no/such/folder"])
def test_model_paths_are_refused_with_one_message(server, object_info, name):
    name = name.format(critic=server.critic_name, abs=server.base / "models" / "rationalrewards" / server.critic_name)
    errors = _loader_errors(*_post(server, _loader_prompt(server, model=name)))
    assert "is not a model name" in errors and "extra_model_paths.yaml" in errors, errors


def test_a_device_outside_the_list_never_runs_on_the_cpu(server, object_info):
    """0.33 refuses it at validation ('Value not in list'); 0.3.64 does not check V3 combos, so the node does."""
    status, body = _post(server, _loader_prompt(server, device="cuda:9"))
    if status == 400:
        text = json.dumps(body["node_errors"]["1"]["errors"])
    else:
        pid, deadline = body["prompt_id"], time.monotonic() + 120
        while pid not in (hist := _http(f"{server.url}/history/{pid}")) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert hist[pid]["status"]["status_str"] == "error", hist[pid]["status"]
        text = json.dumps([m for m in hist[pid]["status"]["messages"] if m[0] == "execution_error"])
    assert "device" in text and "cuda:9" in text and "auto" in text and "cpu" in text, text
