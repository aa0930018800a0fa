"""Stand-in for ComfyUI 0.3.64 nodes.py: common_ksampler (same signature) and EmptyLatentImage's
latent. Our own code: "sampling" is a deterministic function of the positive conditioning, the seed
and the input latent, so tests can tell prompts and seeds apart in the decoded image. Every call is
recorded as ("common_ksampler", {...}). An interrupt raises as ComfyUI's progress hook does."""
from __future__ import annotations

import torch

import comfy.model_management
from standin_log import record

MAX_RESOLUTION = 16384


def common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=1.0,
                    disable_noise=False, start_step=None, last_step=None, force_full_denoise=False):
    comfy.model_management.throw_exception_if_processing_interrupted()
    latent_image = latent["samples"]
    cond = positive[0][0]  # CONDITIONING = [[tensor, {...}], ...]
    gen = torch.Generator().manual_seed(int(seed) % (2 ** 63))
    noise = torch.rand(latent_image.shape, generator=gen)
    samples = 0.5 * float(cond.float().mean()) + 0.1 * noise + float(denoise) * 0.0 + latent_image
    record("common_ksampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
           scheduler=scheduler, positive=positive, negative=negative, denoise=denoise, shape=tuple(latent_image.shape))
    out = latent.copy()
    out["samples"] = samples
    return (out,)


class EmptyLatentImage:
    def generate(self, width, height, batch_size=1):
        return ({"samples": torch.zeros([batch_size, 4, height // 8, width // 8])},)


NODE_CLASS_MAPPINGS = {"EmptyLatentImage": EmptyLatentImage}
