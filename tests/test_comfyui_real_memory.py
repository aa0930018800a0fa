"""Opt-in, against a real ComfyUI (the variables of tests/test_comfyui_real.py; one command per version:
tools/comfy_real_test.sh 0.3.64 | 0.33): the critic under ComfyUI's memory manager and Cancel, through the HTTP API.

- the critic is loaded through ModelPatcher / load_models_gpu on first use, stays loaded (keep_resident), is
  unloaded by ComfyUI's own unload_all_models (POST /free) and comes back on the next critique;
- POST /interrupt in the middle of a Simple Loop ends the run as ComfyUI's "execution_interrupted" (on 0.33
  InterruptProcessingException is a BaseException: nothing of ours may swallow it or turn it into an error),
  and the server and critic carry on.

On the CPU this proves the bookkeeping, not VRAM: whether the weights really leave and come back to a GPU
(ModelPatcherDynamic, pinned and async offload in 0.33) needs a GPU run.
"""
from __future__ import annotations

import json
import time
import uuid

# pytestmark: the same skip; server / object_info: the same module-scoped fixtures (a server for this module)
from test_comfyui_real import ROOT, Server, _http, object_info, pytestmark, server, shrink, to_api  # noqa: F401

#: ComfyUI logs this when load_models_gpu loads the critic (its ModelPatcher wraps our _Holder module).
CRITIC_LOAD = "Requested to load _Holder"


def unload_models(server: Server) -> None:
    """POST /free (unload_models) and make sure it was applied: the prompt worker applies the flags right
    after the prompt it runs (or at once when idle), so they are applied once a trivial prompt has finished."""
    _http(server.url + "/free", {"unload_models": True})
    trivial = {"1": {"class_type": "PrimitiveString", "inputs": {"value": uuid.uuid4().hex}},
               "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    assert server.run(trivial, None)["status"]["status_str"] == "success"


def _critique_prompt(server: Server, object_info: dict, seed: int) -> tuple[dict, dict, str]:
    wf = json.loads((ROOT / "workflows" / "critique_image.json").read_text())
    prompt = shrink(to_api(wf, object_info), server)
    critic_id = next(nid for nid, n in prompt.items() if n["class_type"] == "RationalRewardsCritic")
    prompt[critic_id]["inputs"]["seed"] = seed  # a new critique (not ComfyUI's cache, not the critic's)
    for n in prompt.values():
        if n["class_type"] == "RationalRewardsModelLoader":
            n["inputs"]["keep_resident"] = True
    return prompt, wf, critic_id


def _critique(server: Server, object_info: dict, seed: int) -> str:
    prompt, wf, critic_id = _critique_prompt(server, object_info, seed)
    entry = server.run(prompt, wf)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)[:4000]
    return entry["outputs"][critic_id]["text"][0]


def test_critic_comes_back_after_comfy_unloads_it(server, object_info):
    """The critic under ComfyUI's ModelPatcher: loaded on first use, left loaded (keep_resident), unloaded by
    ComfyUI's own unload_all_models (POST /free), and loaded again by the next critique, with the same answer.
    On the CPU this proves the bookkeeping (listed, unloaded, listed again), not VRAM figures."""
    unload_models(server)
    loads = [server.log_text().count(CRITIC_LOAD)]
    texts = []
    for seed, evict_first in ((101, False), (102, False), (103, True)):
        if evict_first:
            unload_models(server)
        texts.append(_critique(server, object_info, seed))
        loads.append(server.log_text().count(CRITIC_LOAD))
    print("critic loads per critique:", [b - a for a, b in zip(loads, loads[1:])], "| text:", texts[0][:200])
    assert [b - a for a, b in zip(loads, loads[1:])] == [1, 0, 1]
    assert texts[0] == texts[1] == texts[2] and texts[0]
    if server.canned:  # the canned critique's text-faithfulness score
        assert "2.5" in texts[0], texts[0]


def test_compiled_critic_frees_its_cache_when_comfy_unloads_it(server, object_info):
    """speed compiled (torch.compile on the server's CPU): the first critique compiles the decode step once
    (announced in the console); the static cache stays with the loaded critic, also through the next
    critique (ComfyUI's load_models_gpu re-lists a loaded model with a detach that does not unpatch);
    ComfyUI's unload_all_models (POST /free) frees it through the ModelPatcher's ON_DETACH callback; the
    critiques after that give the same answer without compiling again."""
    unload_models(server)
    compiled, freed = "decoder compiled for batch", "compiled decoder's cache is freed too"
    counts, texts = {}, []

    def critique(seed: int, label: str) -> None:
        prompt, wf, critic_id = _critique_prompt(server, object_info, seed)  # a new seed: the Critic runs
        for n in prompt.values():  # again (not ComfyUI's cache); greedy: the same answer
            if n["class_type"] == "RationalRewardsModelLoader":
                n["inputs"]["speed"] = "compiled"
        entry = server.run(prompt, wf)
        assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)[:4000]
        texts.append(entry["outputs"][critic_id]["text"][0])
        counts[label] = (server.log_text().count(compiled), server.log_text().count(freed))

    def free(label: str) -> None:
        before = server.log_text().count(freed)
        unload_models(server)
        deadline = time.monotonic() + 20  # the worker may apply the /free flags just after the trivial prompt
        while server.log_text().count(freed) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        counts[label] = (server.log_text().count(compiled), server.log_text().count(freed))

    critique(201, "critique 1")
    critique(202, "critique 2")
    free("/free 1")
    critique(203, "critique 3")
    free("/free 2")
    print("(compiled, cache freed) log lines:", counts)
    assert "speed='compiled' cannot run here" not in server.log_text()
    assert counts["critique 1"][0] >= 1 and counts["critique 1"][1] == 0  # compiled; the cache is kept ...
    assert counts["critique 2"] == counts["critique 1"]  # ... through the next critique ...
    assert counts["/free 1"][1] == 1  # ... until ComfyUI unloads the critic
    assert counts["critique 3"][0] == counts["critique 1"][0] and counts["/free 2"][1] == 2  # no new compile
    assert texts[0] == texts[1] == texts[2] and texts[0]


def test_cancel_mid_loop_ends_the_run_as_interrupted(server, object_info):
    """POST /interrupt while the Simple Loop is in its second iteration: the run ends as ComfyUI's
    'execution_interrupted' on the loop node (no execution_error), and the next critique runs."""
    wf = json.loads((ROOT / "workflows" / "simple_loop_early_stop.json").read_text())
    prompt = shrink(to_api(wf, object_info), server)
    loop_id = next(nid for nid, n in prompt.items() if n["class_type"] == "RationalRewardsSimpleLoop")
    # long enough to be cancelled in the middle: no early stop, a new seed each time, 30 steps per image
    prompt[loop_id]["inputs"].update(steps=30, max_iterations=20, patience=0, seed_policy="increment")
    unload_models(server)
    before = len(server.log_text())
    pid = server.submit(prompt, wf)
    deadline = time.monotonic() + 300
    while CRITIC_LOAD not in server.log_text()[before:]:  # iteration 1 is being critiqued
        assert time.monotonic() < deadline, server.log_text()[-3000:]
        time.sleep(0.2)
    time.sleep(1.5)  # into iteration 2's sampling
    sent = time.time()
    _http(server.url + "/interrupt", {})
    entry = server.wait(pid, timeout=120)
    messages = entry["status"]["messages"]
    kinds = [m[0] for m in messages]
    assert "execution_error" not in kinds, json.dumps(messages, indent=1)[:4000]
    assert "execution_interrupted" in kinds, json.dumps(messages, indent=1)[:4000]
    stopped = next(m[1] for m in messages if m[0] == "execution_interrupted")
    assert stopped["node_id"] == loop_id, stopped
    sampled = server.log_text()[before:].count("30/30")  # tqdm's line for each finished 30-step sampling
    print(f"cancel: {sampled} images sampled before the cancel", end="")
    if "timestamp" in stopped:
        print(f"; interrupted {stopped['timestamp'] / 1000 - sent:.2f} s after POST /interrupt", end="")
    print()
    assert sampled >= 1  # the loop was past its first image: cancelled mid-loop
    assert _critique(server, object_info, 104)  # the server and the critic carry on
