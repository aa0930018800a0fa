"""Stand-in for server.PromptServer: records progress text instead of sending it."""
from standin_log import record


class PromptServer:
    instance = None

    def __init__(self):
        self.client_id = "test-client"
        self.texts = []

    def send_sync(self, event, data, sid=None):
        record("send_sync", event=event, data=data)

    def send_progress_text(self, text, node_id, sid=None):
        self.texts.append((node_id, text))
        record("progress_text", node_id=node_id, text=text)


PromptServer.instance = PromptServer()
