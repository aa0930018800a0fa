"""What a node does with values the UI would never send but an edited workflow or an API client can:
combo values outside their options, model names that are paths, a critic the machine lacks, images of
any size on the save node. Run through each node's execute (and validate_inputs) as ComfyUI calls them."""
from __future__ import annotations

import shutil

import pytest
import torch

from conftest import run_node
from scripted_critic import t2i_answer


def img(n=1, h=64, w=64, value=0.5):
    return torch.full((n, h, w, 3), value)


@pytest.fixture
def model_root(comfy, tmp_path, monkeypatch):
    """A registered rationalrewards folder (as extra_model_paths.yaml would add), empty at first."""
    import folder_paths

    root = tmp_path / "rationalrewards"
    root.mkdir()
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "rationalrewards", ([str(root)], set()))
    return root


def combo_inputs(cls):
    from comfy_api.latest import io

    return [i for i in cls.define_schema().inputs if isinstance(i, io.Combo.Input)]


def validate_like_comfy_033(cls, widget_values: dict) -> list[str]:
    """What ComfyUI 0.33.0's execution.validate_inputs reports for a V3 node's widget values (read from its
    source, written here in our words): an input the node's own ``validate_inputs`` takes by name is left to
    that function (True, or a string that becomes the error's details); every other combo value must be in
    the input's options ("Value not in list")."""
    from rationalrewards.nodes.common import self_validated_inputs

    own = self_validated_inputs(cls)
    errors = []
    for spec in combo_inputs(cls):
        if spec.id not in own and spec.id in widget_values and widget_values[spec.id] not in spec.options:
            errors.append(f"Value not in list: {spec.id}: {widget_values[spec.id]!r} not in {spec.options}")
    if own:
        ret = cls.validate_inputs(**{k: v for k, v in widget_values.items() if k in own})
        if ret is not True:
            errors.append(f"Custom validation failed for node: {', '.join(sorted(own))} - {ret}")
    return errors


# -- combo values ----------------------------------------------------------------------------------
def test_every_node_checks_every_combo_against_its_options(comfy):
    """Generic, from the schemas: a new node, input or option is covered without changing this test."""
    from rationalrewards.nodes.common import MAX_LISTED_CHOICES, self_validated_inputs
    from rationalrewards.nodes.extension import NODES

    checked = 0
    for cls in NODES:
        assert hasattr(cls.execute, "__wrapped__"), f"{cls.__name__}.execute is not wrapped by @checks_combos"
        for spec in combo_inputs(cls):
            if spec.id in self_validated_inputs(cls):
                continue
            with pytest.raises(ValueError) as e:
                run_node(cls, **{spec.id: "no-such-choice"})
            msg = str(e.value)
            assert msg.startswith(f"'{spec.id}' = 'no-such-choice' is not one of its choices: "), msg
            assert all(str(o) in msg for o in spec.options[:MAX_LISTED_CHOICES]), msg
            checked += 1
    assert checked >= 15  # loader 4, refiner 4, simple loop 6, loop start 1, loop end 3


def test_model_loader_device_cuda9_is_refused_not_run_on_the_cpu(comfy, standin_log, model_root, tiny_critic_dir):
    shutil.copytree(tiny_critic_dir, model_root / "tiny")
    from rationalrewards.nodes.loader import ModelLoader

    with pytest.raises(ValueError, match=r"'device' = 'cuda:9' is not one of its choices: auto, cpu"):
        run_node(ModelLoader, model="tiny", dtype="fp32", attention="sdpa", quantization="none", device="cuda:9",
                 keep_resident=True, batch_size=1)
    assert not standin_log.calls  # refused before anything was loaded or handed to the memory manager
    for name, bad in (("dtype", "fp64"), ("quantization", "fp8-someday"), ("attention", "xformers")):
        inputs = dict(model="tiny", dtype="fp32", attention="sdpa", quantization="none", device="cpu",
                      keep_resident=True, batch_size=1)
        with pytest.raises(ValueError, match=f"'{name}' = '{bad}' is not one of its choices"):
            run_node(ModelLoader, **{**inputs, name: bad})


def test_prompt_refiner_unknown_source_is_refused_not_run_as_the_default(comfy):
    from rationalrewards.models.format import parse_critique
    from rationalrewards.nodes.refine import PromptRefinerNode

    c = parse_critique(t2i_answer(2.0, 3.5, "a better prompt"))
    inputs = dict(prompt="a cat", critique=(c,), rule="paper", threshold=3.0, source="refined_request",
                  keep_phrases="", token_window="off", overflow="keep")
    assert run_node(PromptRefinerNode, **inputs).args[0] == "a better prompt"
    with pytest.raises(ValueError, match="'source' = 'critic_rewrite_v2' is not one of its choices: "
                                         "refined_request, critic_rewrite"):
        run_node(PromptRefinerNode, **{**inputs, "source": "critic_rewrite_v2"})
    with pytest.raises(ValueError, match="'token_window' = '75'"):
        run_node(PromptRefinerNode, **{**inputs, "token_window": "75"})


def test_long_option_lists_are_cut_in_the_message():
    from rationalrewards.nodes.common import MAX_LISTED_CHOICES, invalid_choice_message

    options = [f"s{i}" for i in range(40)]
    msg = invalid_choice_message("sampler_name", "nope", options)
    assert f"s{MAX_LISTED_CHOICES - 1}," in msg and f"s{MAX_LISTED_CHOICES}," not in msg and "(40 choices in all)" in msg


# -- model names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["../{t}", "{abs}", "rationalrewards/../{t}", "~/{t}"])
def test_model_loader_refuses_paths_the_same_whether_or_not_they_exist(comfy, standin_log, model_root,
                                                                        tiny_critic_dir, form):
    from rationalrewards.models.errors import ModelFolderError
    from rationalrewards.nodes.loader import ModelLoader

    shutil.copytree(tiny_critic_dir, model_root.parent / "elsewhere")  # a real critic outside the roots
    messages = []
    for target in ("elsewhere", "missing"):
        name = form.format(t=target, abs=model_root.parent / target)
        with pytest.raises(ModelFolderError) as e:
            run_node(ModelLoader, model=name, dtype="fp32", attention="sdpa", quantization="none", device="cpu",
                     keep_resident=True, batch_size=1)
        assert ModelLoader.validate_inputs(model=name) == str(e.value)  # the same text at queue time
        messages.append(str(e.value).replace(name, "NAME"))
    assert messages[0] == messages[1]
    assert "extra_model_paths.yaml" in messages[0] and "not a model name" in messages[0]
    assert not standin_log.calls


def test_symlinked_model_folder_still_loads(comfy, model_root, tiny_critic_dir):
    from rationalrewards.nodes.loader import ModelLoader, model_choices

    (model_root / "linked-critic").symlink_to(tiny_critic_dir, target_is_directory=True)
    assert "linked-critic" in model_choices()
    assert ModelLoader.validate_inputs(model="linked-critic") is True
    critic = run_node(ModelLoader, model="linked-critic", dtype="fp32", attention="sdpa", quantization="none",
                      device="cpu", keep_resident=False, batch_size=1).args[0]
    assert critic.identity
    critic.close()


def test_shared_workflow_naming_a_missing_critic_gets_the_packs_message(comfy, model_root, tiny_critic_dir,
                                                                        monkeypatch):
    """ComfyUI 0.33 checks combo values before the node runs; the Model Loader takes the model check itself,
    so the user reads where to put the model and how to download it, not a bare "Value not in list"."""
    from rationalrewards.nodes.loader import ModelLoader

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    widgets = dict(model="RationalRewards-8B-T2I", dtype="auto", attention="sdpa", quantization="none", device="auto")
    (err,) = validate_like_comfy_033(ModelLoader, widgets)
    assert "Value not in list" not in err
    assert "'RationalRewards-8B-T2I' not found in" in err and str(model_root / "RationalRewards-8B-T2I") in err
    assert "choose that entry to download it" in err and "hf download TIGER-Lab/RationalRewards-8B-T2I" in err
    # the tiny stand-in the real-ComfyUI test puts into models/rationalrewards passes, as does a repo id
    shutil.copytree(tiny_critic_dir, model_root / "tiny-critic-canned")
    assert validate_like_comfy_033(ModelLoader, {**widgets, "model": "tiny-critic-canned"}) == []
    assert validate_like_comfy_033(ModelLoader, {**widgets, "model": "TIGER-Lab/RationalRewards-8B-Edit"}) == []
    # other combos keep ComfyUI's own check on 0.33 (and the node's own on 0.3.64)
    assert validate_like_comfy_033(ModelLoader, {**widgets, "model": "tiny-critic-canned", "device": "cuda:9"})[0] \
        .startswith("Value not in list: device")
    # a linked (not yet known) model is checked when the node runs
    assert ModelLoader.validate_inputs(model=None) is True


# -- Save Image saves what ComfyUI's SaveImage saves; a Score Card shows any picture -----------------------------------------------
@pytest.mark.parametrize("h,w", [(1, 1), (16, 4000), (4000, 16), (3, 700)])
def test_save_image_takes_any_size(comfy, tmp_path, monkeypatch, h, w):
    import folder_paths
    from PIL import Image

    from rationalrewards.models.format import parse_critique
    from rationalrewards.nodes.scorecard import SaveWithCritiqueNode
    from rationalrewards.report.pngmeta import read_critique_from_png

    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path))
    c = parse_critique(t2i_answer(2.5, 3.5))
    res = run_node(SaveWithCritiqueNode, images=img(1, h, w, 0.25), critique=(c,), filename_prefix="sizes/x")
    saved = res.ui["images"][0]
    path = tmp_path / saved["subfolder"] / saved["filename"]
    with Image.open(path) as im:
        assert im.size == (w, h)
    assert read_critique_from_png(path)[0] == c


@pytest.mark.parametrize("h,w", [(1, 1), (16, 4000)])
def test_score_card_takes_any_size(comfy, h, w):
    from rationalrewards.models.format import parse_critique
    from rationalrewards.nodes.scorecard import ScoreCardNode

    c = parse_critique(t2i_answer(2.5, 3.5))
    card = run_node(ScoreCardNode, image=img(1, h, w, 0.25), critique=(c,), title="").args[0]
    assert card.shape[0] == 1 and card.shape[1] >= 512 and float(card.std()) > 0.05
