"""Stand-in for comfy.patcher_extension: the callback names the pack uses (values as in ComfyUI 0.3.64 and 0.33)."""


class CallbacksMP:
    ON_CLONE = "on_clone"
    ON_LOAD = "on_load_after"
    ON_DETACH = "on_detach_after"
    ON_CLEANUP = "on_cleanup"
