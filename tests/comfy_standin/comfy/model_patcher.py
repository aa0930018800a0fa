"""Stand-in for comfy.model_patcher.ModelPatcher: the constructor and the attributes the pack reads."""
from standin_log import record


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.size = size
        self.weight_inplace_update = weight_inplace_update
        record("ModelPatcher", size=size)

    def model_size(self):
        return self.size

    def loaded_size(self):
        return self.size

    def detach(self, unpatch_all=True):
        record("detach")
        self.model.to(self.offload_device)
