"""Model Loader (local transformers critic) and Remote Critic (OpenAI-compatible server) nodes."""
from __future__ import annotations

from comfy_api.latest import io

from ..models.backends.local import LocalCritic
from ..models.backends.remote import RemoteCritic
from ..models.errors import ModelFolderError
from ..models.store import KNOWN_REPOS, check_model_spec, list_model_dirs, resolve_model
from . import host
from .common import checks_combos
from .types import CATEGORY, Critic


def model_choices() -> list[str]:
    """Folders under every registered ``rationalrewards`` root, then the downloadable repo ids."""
    found = list_model_dirs(host.model_roots())
    return found + [r for r in KNOWN_REPOS if r not in found]


class ModelLoader(io.ComfyNode):
    """Load RationalRewards in this ComfyUI process, under ComfyUI's memory manager."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        choices = model_choices()
        return io.Schema(
            node_id="RationalRewardsModelLoader",
            display_name="RationalRewards Model Loader",
            category=f"{CATEGORY}/loaders",
            description="Loads a RationalRewards critic (Hugging Face folder under models/rationalrewards, "
            "or a repo id downloaded there once) and hands it to ComfyUI's memory manager, so it makes room "
            "for your checkpoint and comes back when needed.",
            inputs=[
                io.Combo.Input("model", options=choices, default=choices[0] if choices else None,
                               tooltip="A folder under models/rationalrewards (any folder with config.json; add "
                               "other places in extra_model_paths.yaml), or TIGER-Lab/RationalRewards-8B-T2I / -Edit "
                               "to download it there on first use (never again once the files are there; set "
                               "HF_HUB_OFFLINE=1 to forbid downloads). Paths are not accepted."),
                io.Combo.Input("dtype", options=["auto", "bf16", "fp16", "fp32"], default="auto",
                               tooltip="Weights precision. auto: bf16 where the GPU supports it, else fp16; fp32 on CPU."),
                io.Combo.Input("attention", options=["sdpa", "eager", "flash_attention_2"], default="sdpa",
                               tooltip="Attention kernel. sdpa works everywhere; flash_attention_2 needs the "
                               "flash-attn package and a CUDA GPU."),
                io.Combo.Input("quantization", options=["none", "8bit", "4bit", "fp8"], default="none",
                               tooltip="Smaller weights for the language model; the vision tower stays 16-bit. "
                               "8bit / 4bit: bitsandbytes (CUDA + the bitsandbytes package; ~9 / ~6 GB instead of "
                               "~17.5 GB); 8bit is the slowest choice of all. "
                               "fp8: torchao float8 weights (~10.6 GB), for GPUs with fp8 (RTX 40xx/50xx, L4, L40, "
                               "H100/H200) with the torchao package; works with speed compiled."),
                io.Combo.Input("device", options=["auto", "cpu"], default="auto",
                               tooltip="auto: ComfyUI's GPU; cpu: run the critic on the CPU (slow, but leaves VRAM free)."),
                io.Boolean.Input("keep_resident", default=True,
                                 tooltip="Keep the critic loaded between uses (ComfyUI still frees it when a "
                                 "diffusion model needs the memory). Off: unload after every critique."),
                io.Int.Input("batch_size", default=4, min=1, max=32,
                             tooltip="Images critiqued together in one GPU pass. Larger is faster but needs more VRAM."),
                io.Combo.Input("speed", options=["auto", "compiled", "standard"], default="auto", optional=True,
                               tooltip="How the critic decodes. compiled: a static KV cache and a compiled decode "
                               "step (CUDA graphs), faster per token; each new batch/length shape compiles once per "
                               "session (shown on the node, roughly a minute), and a batch that does not fit VRAM is "
                               "split. auto: compiled on a GPU where it can run (needs Triton; on Windows "
                               "`pip install triton-windows`), else standard. standard: transformers' generate, no "
                               "compile wait. Where compiled cannot run, the critic says why and decodes standard."),
            ],
            outputs=[Critic.Output(
                "critic", display_name="critic", tooltip="The loaded critic; connect it to Critic, Compare, "
                "Best-of-N, Prompt Refiner or a loop node.")],
        )

    @classmethod
    def validate_inputs(cls, model=None):
        """Check the model name when ComfyUI validates the prompt, with the pack's own message.

        Taking ``model`` here makes ComfyUI 0.33 skip its bare "Value not in list" check of it, so a shared
        workflow naming a critic this machine lacks is refused with where to put the model and how to
        download it (0.3.64 calls this too). Only names are checked here, nothing is downloaded; a linked
        (not yet known) value arrives as None and is checked in execute.
        """
        if model is None:
            return True
        try:
            check_model_spec(model, host.model_roots())
        except ModelFolderError as e:
            return str(e)
        return True

    @classmethod
    @checks_combos
    def execute(cls, model, dtype, attention, quantization, device, keep_resident, batch_size,
                speed="auto") -> io.NodeOutput:
        roots = host.model_roots()
        folder = resolve_model(model, roots, download_root=roots[0])
        critic = LocalCritic.from_pretrained(
            folder, dtype=dtype, attention=attention, quantization=quantization, device=device, speed=speed,
            batch_size=batch_size, memory=host.ComfyPlacement(keep_resident=keep_resident, device=device),
        )
        return io.NodeOutput(critic)


class RemoteCriticNode(io.ComfyNode):
    """A critic answered by an OpenAI-compatible server (vLLM, SGLang, LM Studio, Ollama)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RationalRewardsRemoteCritic",
            display_name="RationalRewards Remote Critic",
            category=f"{CATEGORY}/loaders",
            description="Uses RationalRewards served elsewhere (e.g. `vllm serve`) through the OpenAI-compatible "
            "chat API, so the 8B critic does not share your GPU with the checkpoint. Outputs the same critic "
            "as the Model Loader.",
            inputs=[
                io.String.Input("base_url", default="http://127.0.0.1:6868/v1",
                                tooltip="Server address, e.g. http://127.0.0.1:6868/v1 (/v1 is added when missing)."),
                io.String.Input("model", default="Qwen3-VL-8B-Instruct",
                                tooltip="Model name as the server knows it (vLLM's --served-model-name)."),
                io.String.Input("api_key_env", default="",
                                tooltip="NAME of the environment variable holding the API key (e.g. "
                                "RATIONALREWARDS_API_KEY). The key itself never goes into the workflow or PNGs. "
                                "Empty: no key."),
                io.Float.Input("timeout", default=120.0, min=1.0, max=3600.0, step=1.0,
                               tooltip="Seconds to wait for the server's answer to one image."),
                io.Int.Input("retries", default=3, min=0, max=10,
                             tooltip="Retries after HTTP 429, 5xx or a dropped connection, with growing waits."),
                io.Int.Input("max_concurrency", default=4, min=1, max=64,
                             tooltip="Images sent to the server at once (a batch goes out as parallel requests)."),
            ],
            outputs=[Critic.Output(
                "critic", display_name="critic", tooltip="The remote critic; works wherever a critic is accepted.")],
        )

    @classmethod
    @checks_combos
    def execute(cls, base_url, model, api_key_env, timeout, retries, max_concurrency) -> io.NodeOutput:
        return io.NodeOutput(RemoteCritic(
            base_url, model, api_key_env=api_key_env.strip() or None, timeout=timeout, retries=retries,
            max_concurrency=max_concurrency,
        ))
