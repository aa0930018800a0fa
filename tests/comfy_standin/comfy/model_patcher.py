"""Stand-in for comfy.model_patcher.ModelPatcher: the constructor, the attributes the pack reads, and the
callbacks (add_callback / get_all_callbacks; detach runs the ON_DETACH ones after moving the model, as ComfyUI does)."""
from standin_log import record


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.size = size
        self.weight_inplace_update = weight_inplace_update
        self.callbacks = {}
        record("ModelPatcher", size=size)

    def add_callback(self, call_type, callback):
        self.add_callback_with_key(call_type, None, callback)

    def add_callback_with_key(self, call_type, key, callback):
        self.callbacks.setdefault(call_type, {}).setdefault(key, []).append(callback)

    def get_all_callbacks(self, call_type):
        return [c for cs in self.callbacks.get(call_type, {}).values() for c in cs]

    def model_size(self):
        return self.size

    def loaded_size(self):
        return self.size

    def detach(self, unpatch_all=True):
        from comfy.patcher_extension import CallbacksMP

        if unpatch_all:
            record("detach")
            self.model.to(self.offload_device)
        else:  # load_models_gpu re-listing a loaded model: patches only, the weights stay
            record("detach", unpatch_all=False)
        for callback in self.get_all_callbacks(CallbacksMP.ON_DETACH):
            callback(self, unpatch_all)
        return self.model

    def partially_unload(self, device_to, memory_to_free=0):
        """ComfyUI moves some weights to ``device_to`` until ``memory_to_free`` bytes are freed; here: all."""
        record("partially_unload", memory_to_free=memory_to_free)
        self.model.to(device_to)
        return self.size

    def is_clone(self, other):
        return other is self or getattr(other, "model", None) is self.model
