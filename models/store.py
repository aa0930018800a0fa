"""Finding, downloading and validating RationalRewards model folders (no ComfyUI imports).

A critic is a Hugging Face format folder (config.json + safetensors weights + tokenizer/processor
files). ``nodes/`` hands this module the folders ComfyUI knows for ``rationalrewards`` (ComfyUI's
``models/rationalrewards`` plus whatever extra_model_paths.yaml adds); the command line hands it a
directory. The same functions serve both:

* ``list_model_dirs(roots)``: the choices a loader shows (every folder holding a config.json).
* ``resolve_model(spec, roots, allow_paths=...)``: a name relative to a root or a Hugging Face repo id;
  with ``allow_paths=True`` (the command line only) also a folder path. The node rule
  (``allow_paths=False``, the default) decides on the name alone and never looks outside the roots.
  ``check_model_spec`` runs the same checks without downloading (a node's prompt validation). A repo id is looked up as ``<root>/<owner>--<name>`` (also ``<root>/<name>``) in every root and,
  when no complete copy exists, downloaded into ``<download_root>/<owner>--<name>`` (default: the first
  root). The download is resumable (huggingface_hub keeps partial files in the folder's
  ``.cache/huggingface``), shows progress, fetches only config/tokenizer/processor/safetensors files,
  and is never attempted again once the folder is complete, nor at all under ``HF_HUB_OFFLINE=1``.
* ``validate_model_dir(path)``: one clear ModelFolderError per way a folder can be wrong.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import ModelFolderError

#: model_type of Qwen3-VL in transformers' config.json; RationalRewards-8B is a Qwen3-VL-8B fine-tune.
EXPECTED_MODEL_TYPE = "qwen3_vl"
KNOWN_REPOS = ("TIGER-Lab/RationalRewards-8B-T2I", "TIGER-Lab/RationalRewards-8B-Edit")
#: What a download fetches: configs, tokenizer, chat template, processor and safetensors weights only
#: (no pickle weights, no README images, no training artefacts).
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

Downloader = Callable[..., Any]


def list_model_dirs(roots: Iterable[str | os.PathLike]) -> list[str]:
    """Relative paths (``/``-separated, sorted, no duplicates) of every folder below ``roots`` that holds
    a config.json. Hidden folders (``.cache``, ``.git``) and names the node rule refuses (``~old``,
    ``a:b``) are skipped; missing roots are ignored."""
    found: set[str] = set()
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if "config.json" in filenames:
                rel = Path(dirpath).relative_to(root).as_posix()
                if rel != "." and is_model_name(rel):  # never offer a name the loader would refuse
                    found.add(rel)
    return sorted(found)


def is_repo_id(spec: str) -> bool:
    """True for ``owner/name`` (what Hugging Face repo ids look like)."""
    return bool(_REPO_ID.match(spec)) and ".." not in spec


def repo_folder_name(repo_id: str) -> str:
    """The folder a repo id is stored in below a root: ``owner--name`` (as the hub cache names repos)."""
    owner, name = repo_id.split("/", 1)
    return f"{owner}--{name}"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (read now, not at import time, so a node can honour a changed environment)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model(
    spec: str | os.PathLike,
    roots: Iterable[str | os.PathLike] = (),
    *,
    allow_paths: bool = False,
    download_root: str | os.PathLike | None = None,
    allow_download: bool = True,
    progress: bool = True,
    downloader: Downloader | None = None,
) -> Path:
    """Turn a model name (or, with ``allow_paths``, a folder path) into a complete model folder.

    Two rules, chosen by the caller:

    * ``allow_paths=False`` (ComfyUI nodes: the name may come from a shared workflow or a remote API
      client): only a folder name inside one of ``roots`` (``org/name`` sub-folders included; a folder
      that is a symlink to another disk is fine) or a Hugging Face repo id. ``..``, absolute paths,
      ``~``, backslashes, drive letters and hidden folders are refused by the name alone, with the
      same message whether or not such a folder exists, so a client cannot probe the server's disk.
    * ``allow_paths=True`` (the command line: the user owns the machine): also an absolute or
      ``./``-relative folder path, ``~`` expanded, and a folder relative to the working directory.

    A repo id with no complete copy in any root is downloaded (``downloader`` defaults to
    ``huggingface_hub.snapshot_download``; tests pass a stand-in). Raises ModelFolderError when nothing
    matches, or when a download is needed but not allowed (``allow_download=False``, HF_HUB_OFFLINE=1).
    The returned folder is complete but not yet validated: call ``validate_model_dir`` on it.
    """
    roots = [Path(r).expanduser() for r in roots]
    text, found = _lookup(spec, roots, allow_paths)
    if found is not None:
        return found
    return _resolve_repo(text, roots, download_root, allow_download, progress, downloader)


def check_model_spec(spec: str | os.PathLike | None, roots: Iterable[str | os.PathLike] = (), *,
                     allow_paths: bool = False) -> None:
    """Raise the ModelFolderError ``resolve_model`` would raise for ``spec``, without downloading
    anything: a refused or unknown name, or a repo id that is not downloaded while HF_HUB_OFFLINE=1.
    Cheap (a few stat calls), so a node can run it when ComfyUI validates a prompt."""
    roots = [Path(r).expanduser() for r in roots]
    text, found = _lookup(spec, roots, allow_paths)
    if found is None and _repo_copy(text, roots) is None and hub_offline():
        raise ModelFolderError(_offline_message(text, _download_target(text, roots, None)))


def _lookup(spec, roots: list[Path], allow_paths: bool) -> tuple[str, Path | None]:
    """(the stripped name, its folder) for a local hit; (repo id, None) for a repo id to look up or
    download; ModelFolderError for anything else."""
    text = os.fspath(spec).strip() if spec is not None else ""
    if not text:
        raise ModelFolderError("no critic model given: choose a folder from the list or enter a Hugging Face repo id "
                               f"such as {KNOWN_REPOS[0]}")
    if not allow_paths:
        if not is_model_name(text):
            raise ModelFolderError(refused_name_message(text))
    elif "\0" in text:
        raise ModelFolderError(f"critic {text!r} is not a usable path (it contains a NUL character)")
    else:
        path = Path(text).expanduser()
        if path.is_absolute() or text.startswith((".", "~")):
            if path.is_dir():
                return text, path
            raise ModelFolderError(f"critic folder {text} does not exist; check the path")
    for root in roots:
        cand = root / text
        if cand.is_dir() and _within(cand, root):
            return text, cand
    if allow_paths:
        path = Path(text)
        if path.is_dir() and (not is_repo_id(text) or (path / "config.json").is_file()):  # relative to the working directory
            return text, path
    if is_repo_id(text):
        return text, None
    raise ModelFolderError(_not_found_message(text, roots, allow_paths))


#: One name segment: no separators, drive colons, control characters; not hidden (.cache holds partial
#: downloads) and not starting with ~ (a home folder to a shell: refused as a path, never expanded).
_SEGMENT = re.compile(r"^[^.~/\\:\x00-\x1f\x7f][^/\\:\x00-\x1f\x7f]*$")


def is_model_name(text: str) -> bool:
    """True for a name the node rule accepts: ``/``-separated folder names below a root (``mine``,
    ``org/mine``), which also covers repo ids. Decided on the text alone, never on the disk."""
    return all(_SEGMENT.match(seg) for seg in text.split("/"))


def refused_name_message(text: str) -> str:
    """The one message for every name the node rule refuses (the same whether or not it exists)."""
    return (f"model {text!r} is not a model name: the Model Loader loads only a folder inside the rationalrewards "
            f"model folders (ComfyUI/models/rationalrewards and the extra_model_paths.yaml entries), chosen by its "
            f"name, or a Hugging Face repo id such as {KNOWN_REPOS[0]}; paths (.., absolute, ~) are not accepted. "
            "To use a folder kept elsewhere, add the folder that holds it to extra_model_paths.yaml as "
            "'rationalrewards: /path/to/models' (or symlink it into models/rationalrewards) and restart ComfyUI")


def _not_found_message(text: str, roots: list[Path], allow_paths: bool) -> str:
    searched = ", ".join(str(r) for r in roots) or "(no model folders registered)"
    names = list_model_dirs(roots)
    have = f"; available: {', '.join(names[:20])}" if names else ""
    last = text.rsplit("/", 1)[-1].lower()
    known = next((r for r in KNOWN_REPOS if last in (r.split("/")[1].lower(), repo_folder_name(r).lower())), None)
    first = roots[0] / text if roots else Path(text)
    if known:
        get = (f"It looks like {known}: choose that entry to download it on first use, or download it yourself "
               f"(`hf download {known} --local-dir {first}`)")
    else:
        get = f"Or choose a Hugging Face repo id such as {KNOWN_REPOS[0]} to download it on first use"
    if allow_paths:
        put = f"Put the model folder there as {first}, or give the path of the folder"
    else:
        put = (f"Put the model folder there as {first}, or add the folder that holds it to extra_model_paths.yaml "
               "('rationalrewards: /path/to/models') and restart ComfyUI")
    return f"critic {text!r} not found in {searched}{have}. {put}. {get}"


def _within(path: Path, root: Path) -> bool:
    """Reject names that climb out of a root (``../../etc``). Checked on the name, not the resolved
    path: a model folder that is a symlink to another disk is a normal set-up and stays allowed."""
    rel = os.path.normpath(os.path.relpath(os.path.normpath(os.fspath(path)), os.path.normpath(os.fspath(root))))
    return rel != ".." and not rel.startswith(".." + os.sep) and not os.path.isabs(rel)


def _repo_copy(repo_id: str, roots: list[Path]) -> Path | None:
    """A complete copy of ``repo_id`` in any root (``<root>/<owner>--<name>`` or ``<root>/<name>``)."""
    _, name = repo_id.split("/", 1)
    for root in roots:
        for folder in (root / repo_folder_name(repo_id), root / name):
            if folder.is_dir() and weights_complete(folder):
                return folder
    return None


def _download_target(repo_id: str, roots: list[Path], download_root) -> Path:
    if download_root is None:
        if not roots:
            raise ModelFolderError(f"cannot download {repo_id}: no model folder to download into; "
                                   "pass download_root or register a rationalrewards model folder")
        download_root = roots[0]
    return Path(download_root).expanduser() / repo_folder_name(repo_id)


def _how_to_copy(repo_id: str, target: Path) -> str:
    return (f"download it on a machine with internet (`hf download {repo_id} --local-dir {target}`) and copy "
            f"the folder to {target}")


def _offline_message(repo_id: str, target: Path) -> str:
    return (f"{repo_id} is not downloaded and HF_HUB_OFFLINE=1 forbids downloading; {_how_to_copy(repo_id, target)}, "
            "or unset HF_HUB_OFFLINE")


def _resolve_repo(repo_id, roots, download_root, allow_download, progress, downloader) -> Path:
    copy = _repo_copy(repo_id, roots)
    if copy is not None:
        return copy
    target = _download_target(repo_id, roots, download_root)
    how = _how_to_copy(repo_id, target)
    if hub_offline():
        raise ModelFolderError(_offline_message(repo_id, target))
    if not allow_download:
        raise ModelFolderError(f"{repo_id} is not downloaded and downloads are turned off; {how}, "
                               "or allow downloads")
    if downloader is None:
        from huggingface_hub import snapshot_download as downloader
    target.mkdir(parents=True, exist_ok=True)
    try:
        with _progress_bars(progress):
            # local_dir: plain files in our folder (resumable: partial files wait in local_dir/.cache)
            downloader(repo_id=repo_id, local_dir=str(target), allow_patterns=list(ALLOW_PATTERNS))
    except ModelFolderError:
        raise
    except Exception as e:  # network, 404, gated repo, disk full: say which repo and where
        raise ModelFolderError(f"downloading {repo_id} into {target} failed: {type(e).__name__}: {e}. "
                               f"Run again to resume, or {how}") from e
    if not weights_complete(target):
        problem = _weights_problem(target, allow_pickle=False) or "files are missing"
        raise ModelFolderError(f"download of {repo_id} into {target} is incomplete ({problem}); run again to resume")
    return target


@contextlib.contextmanager
def _progress_bars(show: bool):
    if show:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was:
            enable_progress_bars()


# -- validation ---------------------------------------------------------------------------------------
def validate_model_dir(path: str | os.PathLike, allow_pickle: bool = False) -> Path:
    """Check that ``path`` is a loadable Qwen3-VL (RationalRewards) folder; return it.

    Raises one ModelFolderError, naming the folder and the fix, for: not a folder, a diffusers /
    Stable Diffusion pipeline, no config.json, a config of another architecture (a text-only LLM,
    anything whose model_type is not qwen3_vl), no weights, pickle-only weights without
    ``allow_pickle``, missing shards, and truncated or corrupt safetensors files (checked from the
    header against the file size, without reading tensors).
    """
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelFolderError(f"critic folder {p} does not exist or is not a folder")
    diffusers = (p / "model_index.json").exists() or (p / "unet").is_dir() \
        or ((p / "transformer").is_dir() and (p / "vae").is_dir())
    if diffusers:
        raise ModelFolderError(
            f"{p} is a diffusers image-generation pipeline (Stable Diffusion style), not a critic; "
            "choose a RationalRewards (Qwen3-VL) folder such as RationalRewards-8B-T2I"
        )
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise ModelFolderError(
            f"{p} has no config.json; a critic is a Hugging Face format folder (config.json, *.safetensors, "
            "tokenizer files). Single-file checkpoints are not supported: download the whole repo"
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFolderError(f"{cfg_path} is not readable JSON ({e}); download it again") from e
    model_type = str(cfg.get("model_type", "")) if isinstance(cfg, dict) else ""
    if model_type != EXPECTED_MODEL_TYPE:
        if not isinstance(cfg, dict) or "vision_config" not in cfg:
            what = f"a text-only language model (model_type {model_type or 'missing'}, no vision_config)"
        else:
            what = f"a vision model of another architecture (model_type {model_type or 'missing'})"
        raise ModelFolderError(
            f"{p} holds {what}; the critic must be RationalRewards, a Qwen3-VL model (model_type "
            f"{EXPECTED_MODEL_TYPE}), e.g. {KNOWN_REPOS[0]}"
        )
    problem = _weights_problem(p, allow_pickle)
    if problem:
        raise ModelFolderError(f"{p}: {problem}")
    return p


def weights_complete(path: Path) -> bool:
    """config.json plus complete safetensors weights (every shard of the index, none truncated)."""
    return (path / "config.json").is_file() and _weights_problem(path, allow_pickle=False) is None


def _weights_problem(p: Path, allow_pickle: bool) -> str | None:
    """None when the folder's weights look complete, else what is wrong and how to fix it."""
    index = p / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as e:
            return f"{index.name} is unreadable ({e}); download it again"
        missing = [s for s in shards if not (p / s).is_file()]
        if missing:
            return (f"{len(missing)} of {len(shards)} weight shards are missing ({', '.join(missing[:3])}); "
                    "the download is incomplete: run it again to resume")
        files = [p / s for s in shards]
    else:
        files = sorted(p.glob("*.safetensors"))
    if not files:
        pickles = sorted(f.name for f in p.iterdir() if f.suffix in PICKLE_SUFFIXES)
        if pickles and allow_pickle:
            return None
        if pickles:
            return (f"only pickle weights ({', '.join(pickles[:3])}), which can run code when loaded; use a "
                    "safetensors copy of the model, or opt in to pickle weights (allow_pickle)")
        return "no weights (*.safetensors); the download is incomplete or this is the wrong folder"
    for f in files:
        problem = safetensors_problem(f)
        if problem:
            return problem
    return None


def safetensors_problem(path: Path) -> str | None:
    """Check a safetensors file's header against its size (truncated downloads), reading only the header."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path.name} is truncated ({size} bytes); download it again"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100_000_000:
                return f"{path.name} is truncated or not a safetensors file (header of {n} bytes in {size}); " \
                       "download it again"
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as e:
        return f"{path.name} is not a readable safetensors file ({e}); download it again"
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            return f"{path.name} has a corrupt header (tensor {key}); download it again"
    if 8 + n + end > size:
        return (f"{path.name} is truncated: {size} bytes, but its header needs {8 + n + end}; "
                "the download was cut off: run it again to resume")
    return None
