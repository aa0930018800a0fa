"""The extension ComfyUI loads: it registers the model folder and lists the pack's nodes."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension

from . import host
from .critic import CompareNode, CriticNode
from .loader import ModelLoader, RemoteCriticNode
from .loop_graph import LoopEndNode, LoopStartNode
from .loop_simple import SimpleLoopNode
from .refine import PromptRefinerNode
from .scorecard import SaveWithCritiqueNode, ScoreCardNode
from .select import BestOfNNode

NODES = [ModelLoader, RemoteCriticNode, CriticNode, CompareNode, PromptRefinerNode, BestOfNNode, ScoreCardNode,
         SaveWithCritiqueNode, SimpleLoopNode, LoopStartNode, LoopEndNode]


class RationalRewardsExtension(ComfyExtension):
    """ComfyUI-RationalRewards: critic, prompt refiner, best-of-N, score cards and refinement loops."""

    def __init__(self) -> None:
        # ComfyUI 0.3.64 never calls on_load() (awaited from 0.14 on), so the folder is
        # registered here, when comfy_entrypoint() builds the extension, on every version.
        host.register_model_folder()

    async def on_load(self) -> None:
        """Awaited by newer ComfyUI before get_node_list(); the folder is already registered (idempotent)."""
        host.register_model_folder()

    async def get_node_list(self):
        return list(NODES)
