"""pyproject.toml's registry metadata and the registry archive, checked offline the way the Comfy Registry
reads them (comfy-cli's `comfy node validate` / `comfy node pack`, which need their own venv and network).

- [project]: the node id rules (name), X.Y.Z version, license as a table, the URLs comfy-cli reads;
- [tool.comfy]: publisher, display name, an Icon that exists in this repository (square, <= 400 px),
  requires-comfyui in the registry's version syntax, OS / accelerator classifiers it accepts;
- the archive (git-tracked files minus .comfyignore) holds everything ComfyUI and pip need, and no tests,
  benchmarks, CI scripts, developer tools or docs images.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT, COMFY = CONFIG["project"], CONFIG["tool"]["comfy"]
REPO_URL = PROJECT["urls"]["Repository"]
#: The values comfy-cli's config parser accepts (anything else is dropped with a warning).
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend", "GPU :: Apple Metal"}
VERSION_PART = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)?$")


def test_node_id_and_version_follow_the_registry_rules():
    name = PROJECT["name"]
    # < 100 characters, letters, digits, - _ . only, no two special characters in a row, starts with a letter
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower()  # the registry's advice: the id should not say ComfyUI
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"]), PROJECT["version"]
    lic = PROJECT["license"]
    assert isinstance(lic, dict) and (lic.get("text") or lic.get("file")), lic


def test_urls_are_the_ones_the_registry_reads():
    urls = PROJECT["urls"]
    assert REPO_URL.startswith("https://github.com/")
    # comfy-cli reads Homepage, Documentation, Repository and Issues; other keys are dropped
    assert set(urls) <= {"Homepage", "Documentation", "Repository", "Issues"}, sorted(urls)
    assert urls["Issues"].startswith(REPO_URL)


def test_tool_comfy_fields():
    assert COMFY["PublisherId"] and COMFY["DisplayName"]
    parts = [p.strip() for p in COMFY["requires-comfyui"].split(",")]
    assert all(VERSION_PART.match(p) for p in parts), COMFY["requires-comfyui"]
    classifiers = PROJECT["classifiers"]
    os_values = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    assert os_values and all(v.startswith(OS_PREFIXES) for v in os_values), os_values
    accelerators = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert accelerators and set(accelerators) <= ACCELERATORS, accelerators
    for folder in COMFY.get("includes", []):
        assert (ROOT / folder).exists(), folder


def test_icon_is_a_file_of_this_repository_square_and_small():
    from PIL import Image

    icon = COMFY["Icon"]
    raw = REPO_URL.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    assert icon.startswith(raw), f"Icon {icon!r} should be a raw URL of this repository's main branch"
    path = ROOT / icon[len(raw):]
    assert path.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".svg"} and path.is_file(), path
    if path.suffix.lower() != ".svg":
        with Image.open(path) as im:
            assert im.width == im.height <= 400, im.size


def _archive() -> list[str]:
    """The files `comfy node pack` would zip: git-tracked, minus .comfyignore (git applies the patterns)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")

    def ls(*extra: str) -> set[str]:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", *extra], check=True,
                             capture_output=True, text=True).stdout
        return set(out.splitlines())

    ignored = ls("--ignored", "--exclude-from", str(ROOT / ".comfyignore"))
    return sorted(ls() - ignored)


def test_registry_archive_has_the_pack_and_no_development_files():
    files = _archive()
    tops = {f.split("/", 1)[0] for f in files}
    assert not tops & {"tests", "benchmarks", ".ci", "docs", "tools"}, sorted(tops)
    for needed in ("__init__.py", "pyproject.toml", "requirements.txt", "README.md"):
        assert needed in files, needed
    # every package pip installs and ComfyUI imports, with its files
    for package in CONFIG["tool"]["setuptools"]["packages"]:
        folder = package.removeprefix("rationalrewards").strip(".").replace(".", "/")
        assert f"{folder}/__init__.py".lstrip("/") in files, package
    for pattern in CONFIG["tool"]["setuptools"]["package-data"]["rationalrewards.models.format"]:
        assert any(Path(f).match(f"models/format/{pattern}") for f in files), pattern
    assert any(f.startswith("workflows/") and f.endswith(".json") for f in files)
