"""Build a tiny, randomly initialised diffusers text-to-image pipeline folder for CLI tests.

    build_tiny_diffusers(out_dir, seed=0) -> Path

A StableDiffusionPipeline (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer, DDIM
scheduler; no safety checker) with a few thousand parameters per model, saved with
``save_pretrained`` so the command line loads it back through ``AutoPipelineForText2Image`` /
``AutoPipelineForImage2Image.from_pretrained`` like a user's downloaded model. Everything is made
here, offline: the CLIP tokenizer's vocab.json / merges.txt are written by this module (every byte
character plus a few merges), then read by ``CLIPTokenizer.from_pretrained`` the normal way.

Geometry: VAE with two blocks (scale factor 2), UNet with two blocks, so a 32x32 image is a 16x16
latent; 2 inference steps take well under a second on a CPU. Images are noise, which is all the
tests need: the critic is a random model too.
"""
from __future__ import annotations

import json
from pathlib import Path

WORDS = ["a", "photo", "of", "red", "cube", "on", "the", "table", "cat", "dog", "sharp", "focus",
         "natural", "lighting", "wooden", "blue", "sky"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map (what vocab.json entries are made of)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_clip_tokenizer_files(folder: Path) -> Path:
    """vocab.json + merges.txt of a small byte-level CLIP BPE: every byte alone and word-final
    (``x</w>``), merges that spell WORDS, and CLIP's start/end tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges: list[str] = []
    for w in WORDS:  # left-to-right merges: "p h", "ph o", "pho t", "phot o</w>"
        cur = w[0]
        for k, c in enumerate(w[1:], 1):
            nxt = c + ("</w>" if k == len(w) - 1 else "")
            merges.append(f"{cur} {nxt}")
            cur = cur + nxt
            vocab.setdefault(cur, len(vocab))
    merges = list(dict.fromkeys(merges))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    }), encoding="utf-8")
    return folder


def build_tiny_diffusers(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny StableDiffusionPipeline to ``out_dir`` (model_index.json + component folders)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok_src = write_clip_tokenizer_files(out / "_tokenizer_src")
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_src))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=32,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(out), safe_serialization=True)
    for f in tok_src.iterdir():
        f.unlink()
    tok_src.rmdir()
    return out


if __name__ == "__main__":  # pragma: no cover - build one by hand: python tests/tiny_diffusers.py DIR
    import sys

    print(build_tiny_diffusers(sys.argv[1] if len(sys.argv) > 1 else "tiny-diffusers"))
