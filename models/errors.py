"""Error types of the models layer. Each message names the input or option at fault and the fix;
nodes show them as they are."""
from __future__ import annotations


class CriticError(RuntimeError):
    """Base class for failures of a critic backend."""


class ImageInputError(ValueError):
    """An image that cannot be critiqued (NaN, wrong shape, too small, ...)."""


class ModelFolderError(CriticError):
    """A model folder or repo id that cannot be loaded as a RationalRewards (Qwen3-VL) critic."""


class OptionError(CriticError):
    """A backend option this machine cannot honour (4-bit without CUDA, flash-attn not installed, ...)."""


class RemoteCriticError(CriticError):
    """A remote (OpenAI-compatible) critic failed; the message names the URL and the model."""


class CritiqueInterrupted(CriticError):
    """Generation was stopped by the interrupt callback (the user pressed Cancel)."""
