"""The pieces of compiled decoding that touch the model: the static KV cache, the decode step around
the model's own decoder layers, and next-token choice with transformers' own logits processors.

The step reads every weight through the model's modules at each call (nothing is copied or baked into
the compiled graph), so ComfyUI moving the weights between devices, or replacing the parameter
objects, does not recompile it. It relies only on the module layout Qwen3-VL has had since its
release (transformers 4.57 and 5.x alike): ``model.model.language_model.{embed_tokens, layers, norm,
rotary_emb}``, ``model.lm_head``, and the attention's ``cache.update(key, value, layer_idx, ...)`` call.
"""
from __future__ import annotations

import inspect
from typing import Any

#: GenerationConfig fields whose processors this loop does not reproduce: a call that sets one of
#: them decodes the standard way (value = the field's inactive setting; None means "unset").
UNSUPPORTED_WHEN_SET = {
    "num_beams": 1, "num_return_sequences": 1, "penalty_alpha": None, "guidance_scale": 1.0,
    "sequence_bias": None, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "min_length": 0, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "remove_invalid_values": False, "exponential_decay_length_penalty": None,
    "suppress_tokens": None, "begin_suppress_tokens": None, "top_h": None, "min_p": None, "typical_p": 1.0,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "watermarking_config": None, "stop_strings": None,
    "max_time": None, "dola_layers": None, "prompt_lookup_num_tokens": None, "assistant_early_exit": None,
    "cache_implementation": None,
}
#: generate() keyword arguments (outside the GenerationConfig) the compiled path accepts.
ACCEPTED_EXTRA = {"use_model_defaults"}


def unsupported_settings(gc: Any, extra: dict[str, Any]) -> list[str]:
    """Names of the generation settings in ``gc`` / ``extra`` that only the standard path honours."""
    bad = []
    for name, inactive in UNSUPPORTED_WHEN_SET.items():
        value = getattr(gc, name, inactive)
        if value is None or value == inactive or (inactive is None and value in (0, 0.0, False)):
            continue
        bad.append(f"{name}={value!r}")
    bad += [f"{k}=..." for k in extra if k not in ACCEPTED_EXTRA]
    return bad


class StaticKV:
    """A fixed-size KV cache that the model's attention layers write into.

    ``update`` is what every Qwen3-VL attention layer calls (4.57 passes a cache_kwargs dict, 5.x a
    ``kwargs=`` keyword; both are ignored): write the new key/value at ``index`` and hand back the
    whole fixed-length cache, which the attention then masks.
    """

    def __init__(self, keys: list, values: list, index: Any):
        self.keys, self.values, self.index = keys, values, index

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        k, v = self.keys[layer_idx], self.values[layer_idx]
        k.index_copy_(2, self.index, key_states)
        v.index_copy_(2, self.index, value_states)
        return k, v


def decode_step(lm, head, layers, cache_kw: str, additive_mask: bool, keys, values, tokens, positions, index,
                prompt_mask, gen_start):
    """One token for every row: embed, the model's own decoder layers over the static cache, norm, head.

    tokens [B, 1]; positions [3, B, 1] (Qwen3-VL's 3-D rope positions); index [1]: the cache slot written
    now; prompt_mask [B, L]: the prompt slots each row may attend to; gen_start: the first generated slot.
    Returns float32 logits [B, vocab].
    """
    import torch

    hidden = lm.embed_tokens(tokens)
    position_embeddings = lm.rotary_emb(hidden, positions)
    span = torch.arange(keys[0].shape[2], device=tokens.device)
    allowed = prompt_mask | ((span >= gen_start) & (span <= index))[None, :]
    mask = allowed[:, None, None, :]
    if additive_mask:  # eager attention adds its mask to the scores
        mask = torch.zeros(mask.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(
            ~mask, torch.finfo(hidden.dtype).min)
    cache = StaticKV(keys, values, index)
    for layer in layers:
        out = layer(hidden, attention_mask=mask, position_embeddings=position_embeddings, **{cache_kw: cache})
        hidden = out[0] if isinstance(out, tuple) else out
    hidden = lm.norm(hidden)
    return head(hidden[:, -1, :]).float()


def cache_keyword(layer: Any) -> str:
    """The decoder layers' name for the cache argument: ``cache`` (transformers 5) or ``past_key_values`` (4.x)."""
    try:
        params = inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def take_prefill_kv(output: Any):
    """Yield (keys, values) per layer from generate's returned cache (``cache`` in 5.x, ``past_key_values``
    in 4.x), dropping the cache's own reference to each layer once the caller has moved on, so a layer's
    memory is freed as soon as it is copied."""
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    layers = getattr(cache, "layers", None)
    if not layers:
        raise RuntimeError(f"generate returned no per-layer cache ({type(cache).__name__})")
    for layer in layers:
        kv = (layer.keys, layer.values)
        layer.keys = layer.values = None
        yield kv
        del kv


class TokenChooser:
    """The next token from a step's logits, with transformers' own processors in generate's order:
    repetition penalty, min_new_tokens, then (sampling) temperature, top-k, top-p, softmax + multinomial.
    Settings with other processors never reach here (``unsupported_settings``)."""

    def __init__(self, gc: Any, prompt_len: int, attention_mask: Any, eos_ids: list[int], device: Any):
        import torch
        from transformers.generation import (MinNewTokensLengthLogitsProcessor, RepetitionPenaltyLogitsProcessor,
                                             TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

        procs = []
        penalty = getattr(gc, "repetition_penalty", None)
        if penalty is not None and penalty != 1.0:
            kw = {}
            if "prompt_ignore_length" in inspect.signature(RepetitionPenaltyLogitsProcessor).parameters:
                kw["prompt_ignore_length"] = (attention_mask != 0).int().argmax(dim=1)  # as generate in 5.x
            procs.append(RepetitionPenaltyLogitsProcessor(float(penalty), **kw))
        if (gc.min_new_tokens or 0) > 0:
            procs.append(MinNewTokensLengthLogitsProcessor(prompt_len, int(gc.min_new_tokens),
                                                           torch.tensor(eos_ids, device=device), device=device))
        self.sample = bool(gc.do_sample)
        if self.sample:
            if gc.temperature is not None and gc.temperature != 1.0:
                procs.append(TemperatureLogitsWarper(float(gc.temperature)))
            if gc.top_k is not None and gc.top_k != 0:
                procs.append(TopKLogitsWarper(top_k=int(gc.top_k), min_tokens_to_keep=1))
            if gc.top_p is not None and gc.top_p < 1.0:
                procs.append(TopPLogitsWarper(top_p=float(gc.top_p), min_tokens_to_keep=1))
        self.procs = procs

    def __call__(self, sequences, logits):
        import torch

        scores = logits
        for p in self.procs:
            scores = p(sequences, scores)
        if self.sample:
            return torch.multinomial(torch.nn.functional.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        return torch.argmax(scores, dim=-1)
