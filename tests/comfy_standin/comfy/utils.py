"""Stand-in for comfy.utils.ProgressBar (0.3.64 and 0.33: same code). Like ComfyUI it calls
PROGRESS_BAR_HOOK when one is set; a running server's hook raises InterruptProcessingException when
Cancel was pressed (main.py hijack_progress), tests set such a hook to get that behaviour."""
from standin_log import record

PROGRESS_BAR_HOOK = None


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.node_id = node_id
        self.hook = PROGRESS_BAR_HOOK

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        record("progress", value=value, total=self.total, node_id=self.node_id)
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value):
        self.update_absolute(self.current + value)
