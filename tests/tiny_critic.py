"""Build a tiny, randomly initialised Qwen3-VL critic folder for tests and CPU benchmarks.

    build_tiny_critic(out_dir, seed=0) -> Path

The folder has the layout of Qwen/Qwen3-VL-8B-Instruct (config.json, generation_config.json,
model.safetensors, tokenizer files, chat template, processor configs) and is loaded by the code under
test through the real ``from_pretrained`` path. Everything is made here, offline, in about a second:

* tokenizer: byte-level BPE trained with ``tokenizers`` on a small built-in corpus (the request
  templates' words), Qwen2's pre-tokenizer, then Qwen's special tokens in Qwen's order. Its ids are
  small (NOT Qwen's 151643+), so code that hard-codes Qwen ids fails here, as it should.
* chat template: Qwen3-VL-Instruct style (system/user/assistant, image/text content parts).
* model: text 2 layers, hidden 64; vision 2 blocks, hidden 32, patch 16, spatial merge 2 (the real
  pixel geometry, so real preprocessing runs). Its answers are random text.

Also here: folders that must be rejected (a Stable Diffusion pipeline, a text-only LLM).
Learned from ../shared/comfy/make_tiny_critic.py, written down to what the tests need.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

# Qwen2/Qwen3 added tokens, in Qwen's order (ids 151643.. in the real tokenizer).
QWEN_SPECIAL = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False),
]

CHAT_TEMPLATE = r"""{%- for message in messages -%}
{{- '<|im_start|>' + message.role + '\n' -}}
{%- if message.content is string -%}
{{- message.content -}}
{%- else -%}
{%- for content in message.content -%}
{%- if content.type == 'image' or 'image' in content or 'image_url' in content -%}
{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif content.type == 'video' or 'video' in content -%}
{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- elif 'text' in content -%}
{{- content.text -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}"""

CORPUS = """You are an expert image generation evaluator. Evaluate the generated image against the user
instruction and suggest a refined request. User Instruction: a photo of a red cube on a wooden table.
Text Faithfulness, Image Faithfulness, Physical and Visual Quality, Text Rendering. Justification: Score:
1.0 1.5 2.0 2.5 3.0 3.5 4.0 N/A. Summary: the image follows the request but misses details. Refinement
Comments: name the style, the lighting and the background. Refined Request: a sharp photo of a small red cube
on a rustic wooden table, soft window light. Source Image, Edited Image, Image A, Image B, Winner, tie.
# ## : ; , . ! ? ( ) [ ] { } " ' 0 1 2 3 4 5 6 7 8 9 a cat a dog a sign that says OPEN portrait landscape"""


def build_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained here, with Qwen's special tokens and chat template."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    rng = random.Random(1234)
    words = CORPUS.split()
    lines = [CORPUS] + [" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))) for _ in range(300)]
    tok.train_from_iterator(lines, trainer=trainer)
    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]
    common = dict(unk_token=None, bos_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                  model_max_length=262144, errors="replace", split_special_tokens=False,
                  clean_up_tokenization_spaces=False)
    try:  # transformers 5: the tokenizer takes the vocab and merges directly
        from transformers import Qwen2Tokenizer

        qtok = Qwen2Tokenizer(vocab=vocab, merges=merges, **common)
    except TypeError:  # transformers 4.57: build the fast tokenizer from the trained object
        from transformers import Qwen2TokenizerFast

        qtok = Qwen2TokenizerFast(tokenizer_object=tok, **common)
    qtok.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN_SPECIAL])
    qtok.eos_token = "<|im_end|>"  # as in Qwen3-VL-Instruct's tokenizer_config.json
    qtok.chat_template = CHAT_TEMPLATE
    return qtok


def build_config(tok, text_hidden: int = 64, text_layers: int = 2):
    """A Qwen3VLConfig with the real pixel geometry and a tiny text/vision model."""
    from transformers import Qwen3VLConfig

    ids = {t: tok.convert_tokens_to_ids(t) for t, _ in QWEN_SPECIAL}
    half = text_hidden // 4 // 2
    mrope_section = [half - 2 * (half * 5 // 16), half * 5 // 16, half * 5 // 16]
    rope = {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": mrope_section,
            "mrope_interleaved": True}
    text_config = dict(
        vocab_size=(len(tok) + 63) // 64 * 64, hidden_size=text_hidden, intermediate_size=2 * text_hidden,
        num_hidden_layers=text_layers, num_attention_heads=4, num_key_value_heads=2, head_dim=text_hidden // 4,
        hidden_act="silu", max_position_embeddings=262144, rms_norm_eps=1e-6, attention_bias=False,
        use_cache=True, initializer_range=0.02, bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        rope_parameters=rope, rope_scaling=rope, rope_theta=5000000.0,  # 5.x and 4.57 spellings
    )
    vision_config = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=16,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=text_hidden, num_position_embeddings=256,
        deepstack_visual_indexes=[1], hidden_act="gelu_pytorch_tanh", initializer_range=0.02,
    )
    cfg = Qwen3VLConfig(
        text_config=text_config, vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    cfg.architectures = ["Qwen3VLForConditionalGeneration"]
    return cfg, ids


def build_processor(tok):
    """Qwen3VLProcessor with the real model's image settings (patch 16, merge 2, min 65,536 pixels)."""
    from transformers import Qwen3VLProcessor

    ip_kwargs = dict(
        size={"longest_edge": 16777216, "shortest_edge": 65536}, patch_size=16, temporal_patch_size=2,
        merge_size=2, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, do_resize=True, do_convert_rgb=True,
    )
    from transformers import Qwen2VLImageProcessor, Qwen3VLVideoProcessor

    image = Qwen2VLImageProcessor(**ip_kwargs)
    video = Qwen3VLVideoProcessor(size={"longest_edge": 25165824, "shortest_edge": 4096}, patch_size=16,
                                  temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return Qwen3VLProcessor(image_processor=image, tokenizer=tok, video_processor=video, chat_template=CHAT_TEMPLATE)


def build_tiny_critic(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random Qwen3-VL critic folder to ``out_dir`` and return its path."""
    import torch
    from transformers import GenerationConfig, Qwen3VLForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tok = build_tokenizer()
    cfg, ids = build_config(tok)
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        do_sample=True, top_k=20, top_p=0.8, temperature=0.7,  # Qwen3-VL-Instruct's defaults
    )
    model.save_pretrained(out, safe_serialization=True)
    build_processor(tok).save_pretrained(out)
    _write_compat_files(out)
    return out


def _write_compat_files(out: Path) -> None:
    """transformers 4.57 reads torch_dtype and preprocessor_config.json; write them too (as the real repo has)."""
    cp = out / "config.json"
    cfg = json.loads(cp.read_text())
    cfg.setdefault("torch_dtype", cfg.get("dtype", "float32"))
    cp.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    pp = out / "processor_config.json"
    if pp.exists() and not (out / "preprocessor_config.json").exists():
        ip = dict(json.loads(pp.read_text()).get("image_processor") or {})
        if ip:
            ip["processor_class"] = "Qwen3VLProcessor"
            (out / "preprocessor_config.json").write_text(json.dumps(ip, indent=2, sort_keys=True))


# -- folders that are not a RationalRewards critic ---------------------------------------------------------
def write_safetensors(path: Path, tensors: dict | None = None) -> Path:
    """A small valid safetensors file."""
    import torch
    from safetensors.torch import save_file

    save_file(tensors or {"w": torch.zeros(4, 4)}, str(path))
    return path


def build_sd_folder(out_dir: str | os.PathLike) -> Path:
    """A diffusers Stable Diffusion pipeline layout (model_index.json, unet/, text_encoder/)."""
    out = Path(out_dir)
    (out / "unet").mkdir(parents=True, exist_ok=True)
    (out / "text_encoder").mkdir(exist_ok=True)
    (out / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (out / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    (out / "text_encoder" / "config.json").write_text(json.dumps({"model_type": "clip_text_model"}))
    write_safetensors(out / "unet" / "diffusion_pytorch_model.safetensors")
    return out


def build_text_llm_folder(out_dir: str | os.PathLike, model_type: str = "qwen3") -> Path:
    """A text-only LLM folder (config without vision_config) with valid weights."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": ["Qwen3ForCausalLM"],
                                                 "hidden_size": 64}))
    write_safetensors(out / "model.safetensors")
    return out
