"""Node tests against the ComfyUI stand-in (tests/comfy_standin), with a scripted critic and the tiny
real critic: every node executes, schemas are complete, list/batch semantics hold, bad input errors."""
import json

import pytest
import torch

from conftest import run_node
from scripted_critic import ScriptedCritic, t2i_answer
from rationalrewards.models.errors import OptionError


def img(n=1, h=64, w=64, value=0.5):
    return torch.full((n, h, w, 3), value)


def test_schemas_complete(comfy):
    from rationalrewards.nodes.extension import NODES
    ids = set()
    for cls in NODES:
        s = cls.GET_SCHEMA()
        assert s.node_id.startswith("RationalRewards") and s.node_id not in ids
        ids.add(s.node_id)
        assert s.category.startswith("RationalRewards")
        assert s.description and s.display_name.startswith("RationalRewards")
        for i in s.inputs:
            assert i.tooltip, f"{s.node_id}.{i.id} has no tooltip"
        for o in s.outputs:
            assert o.tooltip, f"{s.node_id} output {o.id} has no tooltip"
    assert len(ids) >= 8


def test_entrypoint_lists_nodes(comfy):
    import asyncio

    import rationalrewards
    ext = asyncio.run(rationalrewards.comfy_entrypoint())
    nodes = asyncio.run(ext.get_node_list())
    assert {n.GET_SCHEMA().node_id for n in nodes} >= {"RationalRewardsCritic", "RationalRewardsModelLoader"}


def test_model_folder_merges_with_extra_paths(comfy, tmp_path):
    import folder_paths
    from rationalrewards.nodes import host
    folder_paths.folder_names_and_paths["rationalrewards"] = ([str(tmp_path / "user_rr")], set())
    roots = host.register_model_folder()
    assert roots[0] == str(tmp_path / "user_rr")  # the user's entry stays first
    assert roots[1].endswith("rationalrewards")
    assert host.register_model_folder() == roots  # idempotent


def test_critic_node_batch_and_prompt_list(comfy, standin_log):
    from rationalrewards.nodes.critic import CriticNode
    critic = ScriptedCritic([t2i_answer(2.5, 3.5, "refined one"), t2i_answer(4, 4, "refined two")])
    out = run_node(CriticNode, critic=[critic], image=[img(2)], prompt=["cat", "dog"], seed=[1],
                   max_new_tokens=[256], temperature=[0.0])
    crits, texts, refined, overall, tf, if_, pq, tr, needs = out.args
    assert len(crits) == 2 and len(texts) == 2
    assert refined == ["refined one", "refined two"]
    assert overall[0] == pytest.approx(2 / 3) and overall[1] == pytest.approx(1.0)
    assert tf == [2.5, 4.0] and pq == [3.5, 4.0]
    assert if_ == [0.0, 0.0]  # not judged in text-to-image: N/A = 0.0
    assert tr == [0.0, 0.0]  # N/A
    assert needs == [True, False]
    # per-image prompts reached the critic in order
    texts_sent = [" ".join(p.get("text", "") for m in c for p in m["content"]) for c in critic.chats]
    assert "User Instruction: cat" in texts_sent[0] and "User Instruction: dog" in texts_sent[1]
    assert "overall" in out.ui.as_dict()["text"][0]
    # progress bar and streamed text went to this node
    assert any(n == "progress" and d["node_id"] == "7" for n, d in standin_log.calls)


def _last_node_text(standin_log, node_id="7"):
    return [d["text"] for n, d in standin_log.calls if n == "progress_text" and d["node_id"] == node_id][-1]


def test_node_face_shows_the_scores_last(comfy, standin_log):
    """The frontend draws a node's last progress text on the node: after the streamed answer, the Critic
    leaves a short score summary there (verdict first), never the middle of the raw text."""
    from rationalrewards.nodes.critic import CompareNode, CriticNode
    critic = ScriptedCritic([t2i_answer(2.5, 3.5)])
    run_node(CriticNode, critic=[critic], image=[img(1)], prompt=["cat"], seed=[1], max_new_tokens=[256],
             temperature=[0.0])
    face = _last_node_text(standin_log)
    lines = face.splitlines()
    assert lines[0] == "overall 0.67 · needs refinement"
    assert lines[1] == "text faithfulness 2.5 · quality 3.5 · text rendering N/A"
    assert len(lines) == 2 and all(len(x) <= 60 for x in lines)  # fits the default node width
    standin_log.calls.clear()
    run_node(CriticNode, critic=[ScriptedCritic(["no scores at all"] * 2)], image=[img(2)], prompt=["cat"], seed=[1],
             max_new_tokens=[256], temperature=[0.0])
    lines = _last_node_text(standin_log).splitlines()
    assert lines[0] == "scores: text faithfulness / quality / text rendering"  # one line per image below
    assert lines[1].startswith("image 1: overall ? · ? / ? / ?") and lines[1].endswith(" problem(s)")
    assert lines[2].startswith("image 2: overall ? · ") and len(lines) == 3
    standin_log.calls.clear()
    run_node(CriticNode, critic=[ScriptedCritic(["no scores at all"])], image=[img(1)], prompt=["cat"], seed=[1],
             max_new_tokens=[256], temperature=[0.0])
    assert "problem(s): missing_section, missing_refined_request" in _last_node_text(standin_log)  # named once
    standin_log.calls.clear()
    run_node(CompareNode, critic=ScriptedCritic(), image_a=img(1), image_b=img(1), prompt="cat", seed=1,
             max_new_tokens=256, temperature=0.0)
    assert _last_node_text(standin_log).startswith("winner ")


def test_critic_node_edit_with_source(comfy):
    from rationalrewards.nodes.critic import CriticNode
    critic = ScriptedCritic()
    out = run_node(CriticNode, critic=[critic], image=[img(2)], prompt=["make it blue"], source_image=[img(1, value=0.1)],
                   seed=[1], max_new_tokens=[256], temperature=[0.1])
    crits = out.args[0]
    assert [c.kind for c in crits] == ["edit", "edit"]
    assert out.args[5] == [2.0, 2.0]  # image_faithfulness of EDIT_FULL


def test_critic_unreadable_gives_minus_one_not_a_score(comfy):
    from rationalrewards.nodes.critic import CriticNode
    out = run_node(CriticNode, critic=[ScriptedCritic(["no structure at all"])], image=[img(1)], prompt=["cat"],
                   seed=[1], max_new_tokens=[256], temperature=[0.1])
    assert out.args[3] == [-1.0] and out.args[4] == [-1.0]
    assert out.args[2] == ["cat"]  # refined prompt falls back to the original
    assert out.args[8] == [False]


@pytest.mark.parametrize("kwargs,msg", [
    (dict(prompt=[""]), "empty"),
    (dict(prompt=["a", "b", "c"]), "3 entries but there are 2"),
    (dict(prompt=["x" * 100_000]), "characters long"),
    (dict(source_image=[img(3)]), "source_image has 3 entries"),
    (dict(image=[torch.full((2, 64, 64, 3), float("nan"))]), "NaN"),
    (dict(image=[img(2, 1, 1)]), "1x1"),
    (dict(critic=["not a critic"]), "Model Loader"),
])
def test_critic_bad_input(comfy, kwargs, msg):
    from rationalrewards.nodes.critic import CriticNode
    base = dict(critic=[ScriptedCritic()], image=[img(2)], prompt=["cat"], seed=[1], max_new_tokens=[256],
                temperature=[0.1])
    base.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=msg):
        run_node(CriticNode, **base)


def test_critic_four_channels_and_huge_image(comfy):
    from rationalrewards.nodes.critic import CriticNode
    critic = ScriptedCritic()
    run_node(CriticNode, critic=[critic], image=[torch.rand(1, 64, 64, 4)], prompt=["cat"], seed=[1],
             max_new_tokens=[256], temperature=[0.1])
    big = torch.zeros(1, 8192, 8192, 3)
    run_node(CriticNode, critic=[critic], image=[big], prompt=["cat"], seed=[2], max_new_tokens=[256],
             temperature=[0.1])
    sent = [p["image"] for p in critic.chats[-1][-1]["content"] if p["type"] == "image"][0]
    assert sent.size[0] * sent.size[1] <= 802_816 and sent.size[0] == sent.size[1]


def test_critic_node_cancel_is_comfy_interrupt(comfy, standin_log):
    import comfy.model_management as mm
    from rationalrewards.nodes.critic import CriticNode
    mm.interrupt_current_processing(True)
    with pytest.raises(mm.InterruptProcessingException):
        run_node(CriticNode, critic=[ScriptedCritic()], image=[img(1)], prompt=["cat"], seed=[1],
                 max_new_tokens=[256], temperature=[0.1])


def test_compare_node(comfy):
    from rationalrewards.nodes.critic import CompareNode
    out = run_node(CompareNode, critic=ScriptedCritic(), image_a=img(1), image_b=img(1, value=0.2), prompt="cat",
                   seed=1, max_new_tokens=256, temperature=0.1)
    comparison, winner, oa, ob, scores, text = out.args
    assert winner == "A" and oa > ob
    assert "Text Faithfulness: A 3.5 | B 1.5 -> A" in scores
    out = run_node(CompareNode, critic=ScriptedCritic(), image_a=img(1), image_b=img(1), prompt="edit",
                   source_image=img(1), seed=1, max_new_tokens=256, temperature=0.1)
    assert out.args[0][0].kind == "pairwise-edit" and out.args[1] == "B"


def test_refiner_node_rules_and_syntax(comfy):
    from rationalrewards.models.format import parse_critique
    from rationalrewards.nodes.refine import PromptRefinerNode
    bad = parse_critique(t2i_answer(2.0, 3.5, "a fluffy cat on a red sofa"))
    good = parse_critique(t2i_answer(3.5, 3.5, "ignored"))
    common = dict(rule="paper", threshold=3.0, source="refined_request", keep_phrases="", token_window="off",
                  overflow="keep")
    out = run_node(PromptRefinerNode, prompt="(cat:1.3) on a sofa <lora:fur:0.8>", critique=(bad,), **common)
    new, changed, reason = out.args
    assert changed and "fluffy" in new and "(cat:1.3)" in new and "<lora:fur:0.8>" in new
    out = run_node(PromptRefinerNode, prompt="cat", critique=(good,), **common)
    assert out.args[:2] == ("cat", False)
    # batch: the best-scored critique is the one used
    out = run_node(PromptRefinerNode, prompt="cat", critique=(bad, good), **dict(common, rule="always"))
    assert out.args[0] == "ignored"
    with pytest.raises(ValueError, match="no critic is connected"):
        run_node(PromptRefinerNode, prompt="cat", critique=(bad,), **dict(common, source="critic_rewrite"))
    with pytest.raises(TypeError, match="critique"):
        run_node(PromptRefinerNode, prompt="cat", critique=torch.zeros(1), **common)


def test_refiner_accepts_critique_json_and_rewrite(comfy):
    from rationalrewards.models.format import parse_critique
    from rationalrewards.nodes.refine import PromptRefinerNode
    bad = parse_critique(t2i_answer(2.0, 3.5, "unused"))
    out = run_node(PromptRefinerNode, prompt="a cat", critique=bad.to_json(), rule="paper", threshold=3.0,
                   source="critic_rewrite", keep_phrases="a cat", token_window="77 (SD1.5/SDXL CLIP)", overflow="trim",
                   critic=ScriptedCritic(["Refined prompt: a tabby kitten on a velvet sofa"]),
                   rewrite_instruction="Rewrite it.")
    assert out.args[1] is True
    assert "tabby kitten" in out.args[0] and "a cat" in out.args[0]


def test_best_of_n_absolute_scores_and_passthrough(comfy):
    from rationalrewards.models.format import parse_critique
    from rationalrewards.nodes.select import BestOfNNode
    crits = tuple(parse_critique(t2i_answer(tf, 3.0)) for tf in (2.0, 4.0, 3.0, 4.0))
    images = torch.stack([torch.full((8, 8, 3), i / 10) for i in range(4)])
    latent = {"samples": torch.arange(4.0).view(4, 1, 1, 1).expand(4, 4, 2, 2).clone()}
    mask = torch.arange(4.0).view(4, 1, 1).expand(4, 8, 8).clone()
    out = run_node(BestOfNNode, images=images, k=2, aspect_weights="", critique=crits, latent=latent, mask=mask,
                   seed=1, max_new_tokens=256, temperature=0.1)
    imgs, idx, scores, lat, msk, kept = out.args
    assert idx == "1,3"  # tie between 1 and 3: earlier first
    assert torch.equal(imgs[:, 0, 0, 0], torch.tensor([0.1, 0.3]))
    assert lat["samples"][:, 0, 0, 0].tolist() == [1.0, 3.0] and msk[:, 0, 0].tolist() == [1.0, 3.0]
    assert scores[0] == pytest.approx(((4 + 3) / 2 - 1) / 3)
    # the same image gets the same score in a different batch (absolute, not relative)
    out2 = run_node(BestOfNNode, images=images[:2], k=1, aspect_weights="", critique=crits[:2],
                    seed=1, max_new_tokens=256, temperature=0.1)
    assert out2.args[2][0] == scores[0]
    with pytest.raises(ValueError, match="4 images"):
        run_node(BestOfNNode, images=images, k=1, aspect_weights="", critique=crits[:3], seed=1,
                 max_new_tokens=256, temperature=0.1)
    with pytest.raises(ValueError, match="name=number"):
        run_node(BestOfNNode, images=images, k=1, aspect_weights="heavy", critique=crits, seed=1,
                 max_new_tokens=256, temperature=0.1)


def test_best_of_n_with_critic(comfy):
    from rationalrewards.nodes.select import BestOfNNode
    critic = ScriptedCritic([t2i_answer(2, 2), t2i_answer(4, 4), t2i_answer(3, 3)])
    out = run_node(BestOfNNode, images=img(3), k=1, aspect_weights="", critic=critic, prompt="cat", seed=1,
                   max_new_tokens=256, temperature=0.1)
    assert out.args[1] == "1"


def test_score_card_and_save(comfy, tmp_path):
    import folder_paths
    from PIL import Image
    from rationalrewards.models.format import parse_critique, parse_comparison
    from rationalrewards.nodes.scorecard import SaveWithCritiqueNode, ScoreCardNode
    from rationalrewards.report.pngmeta import read_critique_from_png
    from data_answers import PAIR_T2I
    c = parse_critique(t2i_answer(2.5, 3.5))
    out = run_node(ScoreCardNode, image=img(2, 512, 512), critique=(c, c), title="")
    cards = out.args[0]
    assert cards.shape[0] == 2 and cards.shape[1] >= 512 and cards.shape[2] > 512 and cards.shape[3] == 3
    assert float(cards.std()) > 0.05  # something was drawn
    pair = parse_comparison(PAIR_T2I)
    assert run_node(ScoreCardNode, image=img(2, 256, 256), critique=(pair,), title="A/B").args[0].shape[0] == 1
    with pytest.raises(ValueError, match="3 critiques"):
        run_node(ScoreCardNode, image=img(2), critique=(c, c, c), title="")
    folder_paths.get_output_directory = lambda: str(tmp_path)
    res = run_node(SaveWithCritiqueNode,
                   _hidden={"prompt": {"1": {"class_type": "X"}}, "extra_pnginfo": {"workflow": {"nodes": []}}},
                   images=img(1), critique=(c,), filename_prefix="rr/test")
    saved = res.ui["images"][0]
    path = tmp_path / saved["subfolder"] / saved["filename"]
    assert read_critique_from_png(path)[0] == c
    info = Image.open(path).info
    assert json.loads(info["workflow"]) == {"nodes": []} and "prompt" in info


def test_critic_node_with_tiny_model_under_memory_manager(comfy, standin_log, tiny_critic_dir):
    """The real loader path: Model Loader -> Critic with the tiny Qwen3-VL, through ModelPatcher."""
    import folder_paths
    from rationalrewards.nodes.critic import CriticNode
    from rationalrewards.nodes.loader import ModelLoader
    folder_paths.add_model_folder_path("rationalrewards", str(tiny_critic_dir.parent))
    out = run_node(ModelLoader, model=tiny_critic_dir.name, dtype="fp32", attention="sdpa", quantization="none",
                   device="cpu", keep_resident=False, batch_size=2)
    critic = out.args[0]
    res = run_node(CriticNode, critic=[critic], image=[img(2, 32, 32)], prompt=["cat"], seed=[0],
                   max_new_tokens=[16], temperature=[0.0])
    crits = res.args[0]
    assert len(crits) == 2 and all(c.overall is None and c.problems for c in crits)  # random text: nothing invented
    names = [n for n, _ in standin_log.calls]
    assert "ModelPatcher" in names and "load_models_gpu" in names
    assert all(d["force_full_load"] for n, d in standin_log.calls if n == "load_models_gpu")
    assert "model_unload" in names  # keep_resident off: unloaded after use
    assert any(n == "progress_text" for n in names)  # streamed onto the node
    critic.close()


def test_model_loader_speed_and_fp8_inputs(comfy, standin_log, tiny_critic_dir):
    """The loader's new inputs: speed (auto by default: standard on this CPU) and the fp8 quantization choice."""
    import folder_paths
    from rationalrewards.nodes.loader import ModelLoader
    inputs = {i.id: i for i in ModelLoader.GET_SCHEMA().inputs}
    assert inputs["speed"].options == ["auto", "compiled", "standard"] and inputs["speed"].default == "auto"
    assert inputs["speed"].optional  # API prompts written before it still validate
    assert "fp8" in inputs["quantization"].options and "slowest" in inputs["quantization"].tooltip
    folder_paths.add_model_folder_path("rationalrewards", str(tiny_critic_dir.parent))
    common = dict(model=tiny_critic_dir.name, dtype="fp32", attention="sdpa", device="cpu", keep_resident=False,
                  batch_size=2)
    critic = run_node(ModelLoader, quantization="none", **common).args[0]  # a workflow saved before `speed`
    assert critic.speed == "standard" and critic.options.speed_note is None
    critic.close()
    with pytest.raises(OptionError, match="quantization='fp8' needs an NVIDIA GPU"):
        run_node(ModelLoader, quantization="fp8", speed="auto", **common)


def test_status_reaches_the_node_once_and_moves_the_bar(comfy, standin_log):
    from rationalrewards.nodes import host
    cb = host.node_callbacks("5", 2)
    cb.on_item(1, 2)
    for f in (0.0, 0.3, 0.6):
        cb.on_status("compiling", f)
    cb.on_status("compiled", None)
    texts = [d["text"] for n, d in standin_log.calls if n == "progress_text"]
    bars = [d["value"] for n, d in standin_log.calls if n == "progress"]
    assert texts == ["compiling", "compiled"]
    assert bars == [1, 1.0, 1.3, 1.6]  # the item done, then the second item's share moving


def test_status_bar_keeps_a_cancel_that_the_progress_hook_swallowed(comfy, standin_log, monkeypatch):
    """ComfyUI's progress hook raises on Cancel and clears the flag; a status tick (on the compile-progress
    thread) must leave the Cancel for the critique, which polls it at its next token."""
    import comfy.model_management as mm
    import comfy.utils
    from rationalrewards.nodes import host

    def hook_like_comfy(self, value, total=None, preview=None):
        mm.throw_exception_if_processing_interrupted()

    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", hook_like_comfy)
    cb = host.node_callbacks("5", 1)
    mm.interrupt_current_processing(True)
    cb.on_status("compiling", 0.5)
    assert cb.is_interrupted()


def test_comfy_placement_makes_room_beside_the_critic(comfy, standin_log):
    import comfy.model_management as mm
    from rationalrewards.nodes import host
    p = host.ComfyPlacement()
    assert p.make_room(10, "cpu") is None  # system memory is not ComfyUI's to free
    mm.FREE_MEMORY["bytes"] = 123
    try:
        assert p.make_room(10 ** 9, "cuda:0") == 123
    finally:
        mm.FREE_MEMORY["bytes"] = 64 * 2 ** 30
    call = [d for n, d in standin_log.calls if n == "free_memory"][-1]
    assert call["memory_required"] == 10 ** 9 and str(call["device"]) == "cuda:0" and call["keep_loaded"] == []
