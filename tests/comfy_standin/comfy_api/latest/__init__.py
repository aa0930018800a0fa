"""Stand-in for comfy_api.latest (ComfyUI 0.3.64): io, ui, ComfyExtension."""
from abc import ABC, abstractmethod

from . import _io as io  # noqa: F401
from . import _ui as ui  # noqa: F401


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Called when an extension is loaded."""

    @abstractmethod
    async def get_node_list(self):
        """Returns a list of nodes that this extension provides."""
