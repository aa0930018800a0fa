"""Shared pytest fixtures. Each block belongs to one part of the pack; add yours as a new marked block."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helper modules next to the tests (tiny_critic)


# ---- local critic (models/backends/local.py, models/store.py) ------------------------------------------
@pytest.fixture(scope="session")
def tiny_critic_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen3-VL critic folder (tests/tiny_critic.py), built once per session (~0.3 s)."""
    from tiny_critic import build_tiny_critic

    return build_tiny_critic(tmp_path_factory.mktemp("critic") / "tiny-critic")


@pytest.fixture(scope="session")
def tiny_critic(tiny_critic_dir):
    """A LocalCritic (CPU, fp32) loaded from the tiny folder through the real from_pretrained path.
    Shared: tests that count generate calls or depend on the cache clear ``critic.cache`` first."""
    from rationalrewards.models.backends.local import LocalCritic

    critic = LocalCritic.from_pretrained(tiny_critic_dir, device="cpu")
    yield critic
    critic.close()
# ---- end local critic ---------------------------------------------------------------------------------


# ---- ComfyUI stand-in (nodes/) -------------------------------------------------------------------------
STANDIN = Path(__file__).resolve().parent / "comfy_standin"


@pytest.fixture(scope="session")
def comfy():
    """Put tests/comfy_standin (our stand-in for ComfyUI 0.3.64's APIs) on sys.path and return the
    pack's node module namespace (rationalrewards.nodes.*) imported against it."""
    if str(STANDIN) not in sys.path:
        sys.path.insert(0, str(STANDIN))
    import importlib

    ext = importlib.import_module("rationalrewards.nodes.extension")
    return ext


@pytest.fixture
def standin_log(comfy):
    import standin_log

    standin_log.reset()
    yield standin_log
    standin_log.reset()


def run_node(cls, _hidden=None, **inputs):
    """Execute a V3 node class the way ComfyUI does: attach hidden values (``_hidden``: unique_id,
    prompt, extra_pnginfo, dynprompt; unique_id defaults to "7"), then call execute(**inputs)."""
    from comfy_api.latest._io import HiddenHolder

    cls.hidden = HiddenHolder(**{"unique_id": "7", **(_hidden or {})})
    return cls.execute(**inputs)
# ---- end ComfyUI stand-in ------------------------------------------------------------------------------
