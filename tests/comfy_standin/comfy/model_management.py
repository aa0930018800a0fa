"""Stand-in for comfy.model_management (0.3.64 signatures), CPU only.

0.33 differs where the pack depends on it: InterruptProcessingException derives from BaseException and
unload_model_and_clones(model, unload_additional_models=True, all_devices=False) exists. Tests switch
those in with monkeypatch (tests/test_comfy_versions.py)."""
import torch

from standin_log import interrupted, record

current_loaded_models = []


class InterruptProcessingException(Exception):
    pass


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def text_encoder_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def module_size(module):
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return False


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return False


#: What get_free_memory reports (tests set it to stand in for a full or an empty GPU).
FREE_MEMORY = {"bytes": 64 * 2**30}


def extra_reserved_memory():
    return 0


def get_free_memory(dev=None, torch_free_too=False):
    free = FREE_MEMORY["bytes"]
    return (free, free) if torch_free_too else free


def free_memory(memory_required, device, keep_loaded=[]):
    record("free_memory", memory_required=memory_required, device=device, keep_loaded=list(keep_loaded))


class LoadedModel:
    def __init__(self, model):
        self.model = model
        self.device = model.load_device

    def model_unload(self, memory_to_free=None, unpatch_weights=True):
        record("model_unload", model=self.model)
        self.model.detach(unpatch_weights)
        return True


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    record("load_models_gpu", models=list(models), memory_required=memory_required, force_full_load=force_full_load)
    for m in models:
        listed = [lm for lm in current_loaded_models if lm.model.is_clone(m)]
        for lm in listed:  # as ComfyUI: a model already loaded is taken out (detach without unpatching) ...
            current_loaded_models.remove(lm)
            lm.model.detach(unpatch_all=False)
        current_loaded_models.insert(0, LoadedModel(m))  # ... and listed again
        m.model.to(m.load_device)


def load_model_gpu(model):
    return load_models_gpu([model])


def loaded_models(only_currently_used=False):
    return [lm.model for lm in current_loaded_models]


def soft_empty_cache(force=False):
    record("soft_empty_cache")


def unload_all_models():
    """As ComfyUI's (free_memory(1e30, ...)): every loaded model is unloaded (model_unload -> detach)."""
    record("unload_all_models")
    for loaded in list(current_loaded_models):
        loaded.model_unload()
    current_loaded_models.clear()


def interrupt_current_processing(value=True):
    interrupted["value"] = value


def processing_interrupted():
    return interrupted["value"]


def throw_exception_if_processing_interrupted():
    if interrupted["value"]:
        interrupted["value"] = False
        raise InterruptProcessingException()
