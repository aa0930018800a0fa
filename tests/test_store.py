"""models/store.py: listing, resolving, downloading (against a local stand-in for the hub) and validating."""
from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import pytest

from rationalrewards.models.errors import ModelFolderError
from rationalrewards.models.store import (
    ALLOW_PATTERNS,
    check_model_spec,
    list_model_dirs,
    refused_name_message,
    repo_folder_name,
    resolve_model,
    safetensors_problem,
    validate_model_dir,
)
from tiny_critic import build_sd_folder, build_text_llm_folder, write_safetensors

REPO = "TIGER-Lab/RationalRewards-8B-T2I"


def _copy_critic(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download: copies a local 'repo' folder into local_dir,
    honouring allow_patterns, and records every call. ``cut`` truncates the weights once (a dropped
    connection); the next call completes them (resume)."""

    def __init__(self, repo_dir: Path, cut: bool = False, fail: Exception | None = None):
        self.repo_dir, self.cut, self.fail = repo_dir, cut, fail
        self.calls: list[dict] = []

    def __call__(self, *, repo_id, local_dir, allow_patterns, **kwargs):
        self.calls.append(dict(repo_id=repo_id, local_dir=local_dir, allow_patterns=allow_patterns, **kwargs))
        if self.fail:
            raise self.fail
        out = Path(local_dir)
        for f in self.repo_dir.iterdir():
            if f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                shutil.copy(f, out / f.name)
        if self.cut:
            self.cut = False
            w = out / "model.safetensors"
            w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
        return str(out)


@pytest.fixture
def hub_repo(tiny_critic_dir, tmp_path) -> Path:
    """The 'remote' repo: the tiny critic plus a pickle file the download must not fetch."""
    repo = _copy_critic(tiny_critic_dir, tmp_path / "hub" / "repo")
    (repo / "pytorch_model.bin").write_bytes(b"pickle")
    return repo


# -- listing ----------------------------------------------------------------------------------------
def test_list_model_dirs_recursive_sorted_and_merged(tiny_critic_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _copy_critic(tiny_critic_dir, a / "zeta")
    _copy_critic(tiny_critic_dir, a / "org" / "alpha")
    (a / ".cache" / "hidden").mkdir(parents=True)
    (a / ".cache" / "hidden" / "config.json").write_text("{}")
    (a / "empty").mkdir()
    _copy_critic(tiny_critic_dir, b / "beta")
    _copy_critic(tiny_critic_dir, b / "zeta")  # same name in two roots: listed once
    _copy_critic(tiny_critic_dir, b / "~old")  # a name the Model Loader would refuse is not offered
    assert list_model_dirs([a, b, tmp_path / "missing"]) == ["beta", "org/alpha", "zeta"]


# -- resolving --------------------------------------------------------------------------------------
def test_resolve_path_and_relative_name(tiny_critic_dir, tmp_path):
    root = tmp_path / "root"
    _copy_critic(tiny_critic_dir, root / "org" / "mine")
    assert resolve_model(str(tiny_critic_dir), [], allow_paths=True) == tiny_critic_dir
    assert resolve_model("org/mine", [tmp_path / "other", root]) == root / "org" / "mine"


def test_resolve_unknown_name_lists_what_exists(tiny_critic_dir, tmp_path):
    _copy_critic(tiny_critic_dir, tmp_path / "have-this")
    with pytest.raises(ModelFolderError, match="not found.*have-this"):
        resolve_model("no-such-model", [tmp_path])
    with pytest.raises(ModelFolderError, match="does not exist"):
        resolve_model(str(tmp_path / "absent"), [tmp_path], allow_paths=True)
    with pytest.raises(ModelFolderError, match="no critic model given"):
        resolve_model("  ", [tmp_path])


def test_resolve_rejects_names_climbing_out_of_the_root(tiny_critic_dir, tmp_path):
    _copy_critic(tiny_critic_dir, tmp_path / "outside")
    (tmp_path / "root").mkdir()
    with pytest.raises(ModelFolderError):
        resolve_model("../outside", [tmp_path / "root"])


def test_repo_id_downloads_once_into_root(hub_repo, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    root = tmp_path / "models"
    hub = FakeHub(hub_repo)
    got = resolve_model(REPO, [root], downloader=hub, progress=False)
    assert got == root / repo_folder_name(REPO) == root / "TIGER-Lab--RationalRewards-8B-T2I"
    assert len(hub.calls) == 1
    call = hub.calls[0]
    assert call["repo_id"] == REPO and call["local_dir"] == str(got)
    assert call["allow_patterns"] == ALLOW_PATTERNS
    assert not (got / "pytorch_model.bin").exists()  # pickle weights are never fetched
    validate_model_dir(got)
    # complete now: never downloaded again, even listed by list_model_dirs
    assert resolve_model(REPO, [root], downloader=hub) == got
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline is fine once the files are there
    assert resolve_model(REPO, [root], downloader=hub) == got
    assert len(hub.calls) == 1
    assert repo_folder_name(REPO) in list_model_dirs([root])


def test_repo_found_under_its_plain_name_in_any_root(tiny_critic_dir, tmp_path):
    _copy_critic(tiny_critic_dir, tmp_path / "r2" / "RationalRewards-8B-T2I")
    hub = FakeHub(tiny_critic_dir)
    got = resolve_model(REPO, [tmp_path / "r1", tmp_path / "r2"], downloader=hub)
    assert got == tmp_path / "r2" / "RationalRewards-8B-T2I" and not hub.calls


def test_interrupted_download_is_resumed(hub_repo, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = FakeHub(hub_repo, cut=True)
    with pytest.raises(ModelFolderError, match="incomplete.*truncated.*run again"):
        resolve_model(REPO, [tmp_path], downloader=hub, progress=False)
    got = resolve_model(REPO, [tmp_path], downloader=hub, progress=False)  # second run completes it
    assert len(hub.calls) == 2
    validate_model_dir(got)


def test_download_into_explicit_download_root(hub_repo, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    got = resolve_model(REPO, [tmp_path / "ro"], download_root=tmp_path / "dl", downloader=FakeHub(hub_repo))
    assert got == tmp_path / "dl" / repo_folder_name(REPO)


def test_offline_and_disabled_downloads_say_where_to_put_files(hub_repo, tmp_path, monkeypatch):
    hub = FakeHub(hub_repo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFolderError, match="HF_HUB_OFFLINE=1") as e:
        resolve_model(REPO, [tmp_path], downloader=hub)
    assert str(tmp_path / repo_folder_name(REPO)) in str(e.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelFolderError, match="downloads are turned off"):
        resolve_model(REPO, [tmp_path], downloader=hub, allow_download=False)
    assert not hub.calls


def test_download_failure_is_a_model_folder_error(hub_repo, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = FakeHub(hub_repo, fail=ConnectionError("no route to host"))
    with pytest.raises(ModelFolderError, match=f"downloading {REPO}.*no route to host"):
        resolve_model(REPO, [tmp_path], downloader=hub)


def test_default_downloader_is_snapshot_download(hub_repo, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = FakeHub(hub_repo)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    resolve_model(REPO, [tmp_path], progress=False)
    assert len(hub.calls) == 1


# -- validating -------------------------------------------------------------------------------------
def test_valid_folder_passes(tiny_critic_dir):
    assert validate_model_dir(tiny_critic_dir) == tiny_critic_dir


def test_missing_config(tiny_critic_dir, tmp_path):
    d = _copy_critic(tiny_critic_dir, tmp_path / "c")
    (d / "config.json").unlink()
    with pytest.raises(ModelFolderError, match="no config.json"):
        validate_model_dir(d)


def test_no_weights(tiny_critic_dir, tmp_path):
    d = _copy_critic(tiny_critic_dir, tmp_path / "c")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="no weights"):
        validate_model_dir(d)


def test_truncated_safetensors(tiny_critic_dir, tmp_path):
    d = _copy_critic(tiny_critic_dir, tmp_path / "c")
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(ModelFolderError, match="model.safetensors is truncated"):
        validate_model_dir(d)
    w.write_bytes(b"\x01")
    assert "truncated" in safetensors_problem(w)
    w.write_bytes(b"not a safetensors file at all")
    assert safetensors_problem(w) is not None


def test_missing_shard(tiny_critic_dir, tmp_path):
    d = _copy_critic(tiny_critic_dir, tmp_path / "c")
    (d / "model.safetensors").rename(d / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelFolderError, match="1 of 2 weight shards are missing"):
        validate_model_dir(d)


def test_pickle_weights_only_with_opt_in(tiny_critic_dir, tmp_path):
    d = _copy_critic(tiny_critic_dir, tmp_path / "c")
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelFolderError, match="pickle weights.*allow_pickle"):
        validate_model_dir(d)
    assert validate_model_dir(d, allow_pickle=True) == d


def test_stable_diffusion_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="diffusers image-generation pipeline"):
        validate_model_dir(build_sd_folder(tmp_path / "sd15"))


def test_text_only_llm(tmp_path):
    with pytest.raises(ModelFolderError, match="text-only language model.*qwen3_vl"):
        validate_model_dir(build_text_llm_folder(tmp_path / "llm"))


def test_other_vision_architecture(tiny_critic_dir, tmp_path):
    d = _copy_critic(tiny_critic_dir, tmp_path / "c")
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "qwen2_5_vl"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="another architecture.*qwen2_5_vl"):
        validate_model_dir(d)


def test_unreadable_config(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    write_safetensors(d / "model.safetensors")
    with pytest.raises(ModelFolderError, match="not readable JSON"):
        validate_model_dir(d)


def test_not_a_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        validate_model_dir(tmp_path / "nothing")


def test_symlinked_model_folder_under_a_root_is_found(tmp_path, tiny_critic_dir):
    """Users often symlink a model folder kept on another disk into models/rationalrewards."""
    from rationalrewards.models.store import resolve_model
    from rationalrewards.models.errors import ModelFolderError
    root = tmp_path / "rationalrewards"
    root.mkdir()
    (root / "linked-critic").symlink_to(tiny_critic_dir, target_is_directory=True)
    assert resolve_model("linked-critic", [root]) == root / "linked-critic"
    (root / "a").mkdir()
    (tmp_path / "outside").mkdir()
    with pytest.raises(ModelFolderError):  # a name that climbs out of the root is still refused
        resolve_model("a/../../outside", [root])


# -- the node rule (allow_paths=False) and the command-line rule (allow_paths=True) -----------------
@pytest.mark.parametrize("name", ["../outside", "../missing", "a/../../outside", "a/../../missing", "/ABS/outside",
                                  "/ABS/missing", "~/outside", "./a", ".hidden", "a\\..\\..\\outside",
                                  "C:/outside", "a//b", "a/", "bad\x00name", "new\nline"])
def test_node_rule_refuses_paths_by_the_name_alone(tiny_critic_dir, tmp_path, name):
    """Whatever the name points at, existing or not, the refusal is the same message: nothing about the
    disk leaks to an API client, and nothing outside the roots is loaded."""
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    _copy_critic(tiny_critic_dir, tmp_path / "outside")
    (root / ".hidden").mkdir()
    name = name.replace("/ABS", str(tmp_path))
    with pytest.raises(ModelFolderError) as e:
        resolve_model(name, [root])
    assert str(e.value) == refused_name_message(name)
    assert "extra_model_paths.yaml" in str(e.value)
    with pytest.raises(ModelFolderError) as e2:
        check_model_spec(name, [root])
    assert str(e2.value) == str(e.value)


def test_refusal_does_not_depend_on_what_exists(tiny_critic_dir, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _copy_critic(tiny_critic_dir, tmp_path / "exists")
    messages = set()
    for target in ("exists", "missing"):
        for form in (f"../{target}", str(tmp_path / target)):
            with pytest.raises(ModelFolderError) as e:
                resolve_model(form, [root])
            messages.add(str(e.value).replace(form, "NAME"))
    assert len(messages) == 1


def test_command_line_rule_takes_paths(tiny_critic_dir, tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert resolve_model(str(tiny_critic_dir), [root], allow_paths=True) == tiny_critic_dir
    monkeypatch.chdir(tiny_critic_dir.parent)
    assert resolve_model("./" + tiny_critic_dir.name, [root], allow_paths=True) == Path(tiny_critic_dir.name)
    assert resolve_model(tiny_critic_dir.name, [root], allow_paths=True) == Path(tiny_critic_dir.name)
    with pytest.raises(ModelFolderError, match="not found"):  # the node rule never looks in the working folder
        resolve_model(tiny_critic_dir.name, [root])


def test_unknown_name_says_where_to_put_it_and_which_repo_to_download(tmp_path):
    root = tmp_path / "rationalrewards"
    root.mkdir()
    with pytest.raises(ModelFolderError) as e:
        check_model_spec("RationalRewards-8B-Edit", [root])
    msg = str(e.value)
    assert "not found" in msg and str(root / "RationalRewards-8B-Edit") in msg
    assert "TIGER-Lab/RationalRewards-8B-Edit" in msg and "hf download" in msg and "extra_model_paths.yaml" in msg
    with pytest.raises(ModelFolderError, match="not found.*such as TIGER-Lab/RationalRewards-8B-T2I"):
        check_model_spec("my-critic", [root])


def test_check_model_spec_accepts_folders_and_repo_ids_without_downloading(tiny_critic_dir, tmp_path, monkeypatch):
    root = tmp_path / "rationalrewards"
    root.mkdir()
    (root / "linked").symlink_to(tiny_critic_dir, target_is_directory=True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    check_model_spec("linked", [root])
    check_model_spec(REPO, [root])  # would be downloaded at execute time
    assert not (root / repo_folder_name(REPO)).exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFolderError, match="HF_HUB_OFFLINE=1"):
        check_model_spec(REPO, [root])
