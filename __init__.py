"""ComfyUI-RationalRewards: the ComfyUI entry point.

ComfyUI imports this file from custom_nodes/ and calls ``comfy_entrypoint()``. Nothing ComfyUI-specific
is imported at module level, so the same package also works as ``rationalrewards`` for pip / the CLI.
"""

__version__ = "0.1.0"


async def comfy_entrypoint():
    """Return the ComfyExtension that lists this pack's nodes (ComfyUI V3 entry point)."""
    from .nodes import extension

    return extension.RationalRewardsExtension()
