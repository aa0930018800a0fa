"""Where ComfyUI 0.33 differs from 0.3.64 in ways the nodes depend on, run against the stand-in both ways:

- ``InterruptProcessingException`` derives from Exception in 0.3.64 and from BaseException since 0.20:
  Cancel must end the node as ComfyUI's interrupt either way (never turn into a critic or generator
  error), and a critic failure must still be caught and reported (never pass as a cancel);
- ``unload_model_and_clones`` (0.23+) is the public way to unload one model; 0.3.64 lacks it;
- ``ComfyExtension.on_load()`` is awaited since 0.14; 0.3.64 never calls it.

The real servers are exercised by tests/test_comfyui_real.py (tools/comfy_real_test.sh 0.3.64 | 0.33).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
import torch

from conftest import run_node
from loop_doubles import BAD, FakeClip, FakeVae, MiniExecutor, answers, sampler_calls
from scripted_critic import ScriptedCritic
from test_loop_graph_nodes import linear_prompt
from test_loop_nodes import simple_inputs


class _Interrupt033(BaseException):
    """ComfyUI 0.33's InterruptProcessingException: a BaseException, so `except Exception` misses it."""


@pytest.fixture(params=["0.3.64", "0.33"])
def version(request, comfy, standin_log, monkeypatch):
    """The stand-in as ComfyUI 0.3.64 (as written) or as 0.33 (interrupt base class switched), with the
    progress hook a running server installs: it raises the interrupt when Cancel was pressed."""
    import comfy.model_management as mm
    import comfy.utils

    if request.param == "0.33":
        monkeypatch.setattr(mm, "InterruptProcessingException", _Interrupt033)

    def server_hook(value, total, preview, node_id=None):  # main.py hijack_progress, both versions
        mm.throw_exception_if_processing_interrupted()

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", server_hook)
    return request.param


class _CancelInDecode(FakeVae):
    """Cancel pressed while the VAE decodes iteration 1: the next progress update raises."""

    def decode(self, samples):
        import comfy.model_management as mm

        mm.interrupt_current_processing()
        return super().decode(samples)


def test_cancel_while_sampling_ends_simple_loop_as_interrupt(version):
    import comfy.model_management as mm
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    clip = FakeClip(on_encode=lambda k: mm.interrupt_current_processing() if k == 3 else None)
    with pytest.raises(mm.InterruptProcessingException):
        run_node(SimpleLoopNode, **simple_inputs(ScriptedCritic(answers((BAD, "b"), (BAD, "c"))), clip=clip))
    assert not mm.processing_interrupted()


def test_cancel_seen_by_progress_hook_ends_simple_loop_as_interrupt(version, standin_log):
    import comfy.model_management as mm
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers((BAD, "b"), (BAD, "c")))
    with pytest.raises(mm.InterruptProcessingException):
        run_node(SimpleLoopNode, **simple_inputs(critic, vae=_CancelInDecode()))
    assert critic.chats == [] and len(sampler_calls(standin_log)) == 1


def test_cancel_while_critiquing_ends_simple_loop_as_interrupt(version):
    import comfy.model_management as mm
    from rationalrewards.nodes.loop_simple import SimpleLoopNode

    class CancelInCritique(ScriptedCritic):
        def _generate(self, messages, settings, callbacks):
            mm.interrupt_current_processing()  # the critic polls is_interrupted: CritiqueInterrupted
            return super()._generate(messages, settings, callbacks)

    with pytest.raises(mm.InterruptProcessingException):
        run_node(SimpleLoopNode, **simple_inputs(CancelInCritique(answers((BAD, "b")))))


def test_critic_failure_is_still_reported_not_a_cancel(version):
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers((BAD, "second"), (BAD, "third")), fail_after=1)
    out = run_node(SimpleLoopNode, **simple_inputs(critic))
    data = json.loads(out.args[4])
    assert data["stop_reason"] == "critic_error" and "scripted critic failure" in data["error"]


def test_cancel_seen_by_progress_hook_ends_critic_node_as_interrupt(version):
    """Cancel pressed while image 1 of 2 was critiqued: the node's progress update raises ComfyUI's
    interrupt from inside the backend; nothing catches it on the way out."""
    import comfy.model_management as mm
    from rationalrewards.nodes.critic import CriticNode

    class CancelAfterFirst(ScriptedCritic):
        def _generate(self, messages, settings, callbacks):
            on_item = callbacks.on_item

            def item(done, total):
                mm.interrupt_current_processing()
                on_item(done, total)

            return super()._generate(messages, settings, dataclasses.replace(callbacks, on_item=item))

    critic = CancelAfterFirst()
    with pytest.raises(mm.InterruptProcessingException):
        run_node(CriticNode, critic=[critic], image=[torch.rand(2, 32, 32, 3)], prompt=["cat"], seed=[1],
                 max_new_tokens=[256], temperature=[0.1])
    assert len(critic.chats) == 1


def test_cancel_ends_graph_loop_as_interrupt(version):
    import comfy.model_management as mm
    ex = MiniExecutor(linear_prompt(), ScriptedCritic(answers((BAD, "b"))))
    ex.output("15")
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        ex.output("20")


def test_graph_loop_critic_failure_is_reported(version):
    ex = MiniExecutor(linear_prompt(), ScriptedCritic(fail_after=0))
    data = json.loads(ex.output("20")[4])
    assert data["stop_reason"] == "critic_error" and "scripted critic failure" in data["error"]


# ---- unloading the critic from ComfyUI's memory manager ------------------------------------------------
class _Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4))


def _loaded(mm, patcher) -> bool:
    return any(m is patcher for m in mm.loaded_models())


def _helper_033(mm, devices, calls):
    """unload_model_and_clones as in ComfyUI 0.33: frees the model on the GPU devices it knows."""

    def unload_model_and_clones(model, unload_additional_models=True, all_devices=False):
        calls.append((model, unload_additional_models, all_devices))
        for i, lm in reversed(list(enumerate(mm.current_loaded_models))):
            if lm.model is model and lm.device in devices:
                lm.model_unload()
                mm.current_loaded_models.pop(i)

    return unload_model_and_clones


@pytest.mark.parametrize("helper_devices", [None, "cpu", "cuda"],
                         ids=["0.3.64-no-helper", "0.33-helper-frees-it", "0.33-cpu-critic-beside-a-gpu"])
def test_release_takes_the_critic_out_of_comfy_loaded_models(comfy, standin_log, monkeypatch, helper_devices):
    import comfy.model_management as mm
    from rationalrewards.nodes.host import ComfyPlacement
    calls = []
    if helper_devices is not None:
        devices = [torch.device(helper_devices if helper_devices == "cpu" else "cuda:0")]
        monkeypatch.setattr(mm, "unload_model_and_clones", _helper_033(mm, devices, calls), raising=False)
    elif hasattr(mm, "unload_model_and_clones"):
        monkeypatch.delattr(mm, "unload_model_and_clones")
    mm.current_loaded_models.clear()
    other = ComfyPlacement(keep_resident=True, device="cpu")
    other.prepare(_Module())  # another model ComfyUI holds: it must stay
    placement = ComfyPlacement(keep_resident=False, device="cpu")
    model = _Module()
    placement.prepare(model)
    assert _loaded(mm, placement.patcher) and _loaded(mm, other.patcher)
    placement.release(model)
    assert not _loaded(mm, placement.patcher) and _loaded(mm, other.patcher)
    unloads = [d["model"] for n, d in standin_log.calls if n == "model_unload"]
    assert unloads == [placement.patcher]  # detached exactly once, by the helper or by hand
    if helper_devices is not None:
        assert calls == [(placement.patcher, False, True)]
    # evicted, then asked for again: it comes back (a new load through the memory manager)
    placement.prepare(model)
    assert _loaded(mm, placement.patcher)
    assert sum(1 for n, d in standin_log.calls if n == "load_models_gpu" and placement.patcher in d["models"]) == 2
    mm.current_loaded_models.clear()


def test_extension_registers_the_model_folder_with_or_without_on_load(comfy):
    import folder_paths
    ext = comfy.RationalRewardsExtension()  # 0.3.64: constructed, never on_load()
    assert "rationalrewards" in folder_paths.folder_names_and_paths
    asyncio.run(ext.on_load())  # 0.14+: awaited before get_node_list()
    roots = folder_paths.get_folder_paths("rationalrewards")
    assert len(roots) == len(set(roots))  # registering twice adds nothing
    assert len(asyncio.run(ext.get_node_list())) == len(comfy.NODES)
