"""Drive ComfyUI's real web frontend in headless Chromium (Playwright) the way a user does.

Used by the CI guard (test_drop_guard.py: the frontend package served by fake_comfy.py) and the opt-in
real-ComfyUI test (test_browser_real.py). Playwright is pointed at Debian's Chromium (browser downloads
are blocked; ``RATIONALREWARDS_CHROMIUM`` names another binary).

:class:`App` opens the frontend, records everything the user could see go wrong (page errors, console
errors, native alerts, toasts, dialogs, failed requests) with the phase it happened in, and
:meth:`App.drop_workflow` drops a workflow file onto the canvas as a File in a DataTransfer, exactly the
event sequence a drag from the file manager produces, then reads the graph back from the page.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from graph_compare import compare_graphs

CHROMIUM = os.environ.get("RATIONALREWARDS_CHROMIUM", "/usr/bin/chromium")
#: Headless on a machine without a GPU or network besides localhost (see ../shared README of the machine).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1920, "height": 1080}
#: Settings a returning user has: no first-run template browser over the canvas.
USER_SETTINGS = {"Comfy.TutorialCompleted": True}
#: Words that tie a message to this pack (its nodes, its folder, its subgraph blueprints).
PACK_WORDS = re.compile(r"RationalRewards|blueprint", re.I)

# Every toast and dialog that appears is recorded with its text (a toast can vanish before we look).
WATCH_JS = """
(() => {
  window.__rrSeen = [];
  const record = (kind, el) => setTimeout(() => window.__rrSeen.push(
      {kind, text: (el.innerText || el.textContent || '').trim().slice(0, 4000), t: Date.now()}), 150);
  new MutationObserver(muts => { for (const m of muts) for (const n of m.addedNodes) {
    if (!(n instanceof Element)) continue;
    const toasts = n.matches('.p-toast-message') ? [n] : [...n.querySelectorAll('.p-toast-message')];
    toasts.forEach(el => record('toast', el));
    const dialogs = n.matches('.p-dialog') ? [n] : [...n.querySelectorAll('.p-dialog')];
    dialogs.forEach(el => record('dialog', el));
  }}).observe(document, {childList: true, subtree: true});
})();
"""

# A user's drag of a file from the file manager: dragenter, dragover, drop on the canvas, carrying a File.
DROP_JS = """
async ({name, text}) => {
  const dt = new DataTransfer();
  dt.items.add(new File([text], name, {type: 'application/json'}));
  const el = document.querySelector('#graph-canvas') || document.querySelector('canvas')
             || document.elementFromPoint(innerWidth / 2, innerHeight / 2);
  const r = el.getBoundingClientRect();
  const init = {bubbles: true, cancelable: true, composed: true, dataTransfer: dt,
                clientX: r.x + r.width / 2, clientY: r.y + r.height / 2};
  for (const type of ['dragenter', 'dragover', 'drop']) el.dispatchEvent(new DragEvent(type, init));
}
"""

GRAPH_JS = """
() => {
  const g = window.app.rootGraph || window.app.graph;
  const wf = window.app.extensionManager?.workflow?.activeWorkflow;
  // a type the frontend does not know (has_errors alone also marks a missing model file: not the file's fault)
  const broken = (g.nodes || []).filter(n => !window.LiteGraph?.registered_node_types?.[n.type])
                                .map(n => `${n.id} ${n.type}`);
  return {graph: JSON.parse(JSON.stringify(g.serialize())), workflow: wf?.filename ?? wf?.path ?? null,
          broken};
}
"""


@dataclass
class Event:
    """Something the page reported: kind is pageerror, console, alert, toast, dialog or http."""
    phase: str
    kind: str
    text: str

    def __str__(self) -> str:
        return f"[{self.phase}] {self.kind}: {self.text}"


@dataclass
class DropResult:
    name: str
    problems: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    graph: dict | None = None
    screenshot: Path | None = None


def launch(playwright):
    """Headless Debian Chromium."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set RATIONALREWARDS_CHROMIUM)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


class App:
    """One browser page on a ComfyUI frontend at ``url``."""

    def __init__(self, browser, url: str, shots: Path):
        self.url, self.shots = url.rstrip("/"), Path(shots)
        self.shots.mkdir(parents=True, exist_ok=True)
        for old in [*self.shots.glob("*.png"), *self.shots.glob("*.json")]:  # only this run's pictures stay
            old.unlink()
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.events: list[Event] = []
        self.api_calls: list[tuple[str, str, int]] = []  # (method, path after /api, status)
        self.phase = "load"
        self._seen = 0
        #: {node type: widget count in the newest recorded ComfyUI} (graph_compare.compare_graphs)
        self.newer_widgets: dict = {}
        self.page.add_init_script(WATCH_JS)
        self.page.on("pageerror", lambda e: self._add("pageerror", f"{e}\n{(getattr(e, 'stack', '') or '')[:1500]}"))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)
        self.page.on("response", self._response)

    # ---------------------------------------------------------------------------------- event recording
    def _add(self, kind: str, text: str) -> None:
        self.events.append(Event(self.phase, kind, text))

    def _console(self, msg) -> None:
        if msg.type in ("error", "assert"):
            loc = msg.location or {}
            self._add("console", f"{msg.text} ({loc.get('url', '')}:{loc.get('lineNumber', '')})")

    def _dialog(self, dialog) -> None:
        self._add("alert", f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _response(self, resp) -> None:
        if "/api/" in resp.url:
            self.api_calls.append((resp.request.method, resp.url.split("/api", 1)[1], resp.status))
        if resp.status >= 400:
            self._add("http", f"{resp.request.method} {resp.url} -> {resp.status}")

    def collect_seen(self) -> None:
        """Move toasts and dialogs the watcher saw into the event list."""
        seen = self.page.evaluate("() => window.__rrSeen || []")
        for item in seen[self._seen:]:
            self._add(item["kind"], item["text"])
        self._seen = len(seen)

    def since(self, mark: int) -> list[Event]:
        self.collect_seen()
        return self.events[mark:]

    # ------------------------------------------------------------------------------------------ actions
    def open(self, timeout: float = 120) -> None:
        """Load the frontend and wait until the canvas and the node definitions are there."""
        self.phase = "load"
        self.page.goto(self.url + "/", wait_until="domcontentloaded", timeout=timeout * 1000)
        self.page.wait_for_function(
            "() => window.app && window.app.canvas && (window.app.rootGraph || window.app.graph)"
            " && Object.keys(window.LiteGraph?.registered_node_types || {}).length > 10",
            timeout=timeout * 1000)
        self.page.wait_for_timeout(1500)  # late extension set-up, the first toasts
        self.collect_seen()

    def close_dialogs(self) -> None:
        """Close dialogs that opened by themselves at load (release notes etc.), by their close button."""
        for _ in range(3):
            buttons = self.page.locator(".p-dialog .p-dialog-close-button, .p-dialog [aria-label='Close']")
            if not buttons.count():
                return
            buttons.first.click()
            self.page.wait_for_timeout(300)

    def new_blank_workflow(self) -> None:
        self.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.NewBlankWorkflow')")
        self.page.wait_for_timeout(300)

    def graph(self) -> dict:
        return self.page.evaluate(GRAPH_JS)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def drop_workflow(self, path: Path, text: str | None = None, timeout: float = 20) -> DropResult:
        """Drop ``path`` (or ``text`` under its name) onto the canvas; compare what loaded with the file.

        Problems: any page error, console error, alert, toast or dialog during the drop; the graph not
        replaced by the file's within ``timeout``; nodes the frontend could not create; and every
        difference :func:`graph_compare.compare_graphs` finds."""
        path = Path(path)
        text = path.read_text() if text is None else text
        original = json.loads(text)
        self.new_blank_workflow()
        self.collect_seen()
        mark, self.phase = len(self.events), f"drop {path.name}"
        self.page.evaluate(DROP_JS, {"name": path.name, "text": text})
        want = {str(n["id"]) for n in original.get("nodes") or []}
        deadline, state = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            state = self.graph()
            if {str(n["id"]) for n in state["graph"].get("nodes") or []} == want and want:
                break
            if any(e.kind in ("pageerror", "alert", "toast", "dialog") for e in self.since(mark)):
                break
            self.page.wait_for_timeout(200)
        self.page.wait_for_timeout(1200)  # toasts from validation after the graph is configured
        state = self.graph()
        result = DropResult(path.name, events=self.since(mark), graph=state["graph"])
        result.problems += [str(e) for e in result.events if e.kind != "http"]
        result.problems += [f"[{self.phase}] {e.text}" for e in result.events
                            if e.kind == "http" and not e.text.split(" ")[1].endswith(".webp")]
        if state["broken"]:
            result.problems.append(f"nodes the frontend could not create: {state['broken']}")
        loaded_ids = {str(n["id"]) for n in state["graph"].get("nodes") or []}
        if loaded_ids != want:
            result.problems.append(f"the canvas does not show {path.name} after the drop (nodes {sorted(loaded_ids)}; "
                                   f"the file has {sorted(want)})")
        else:
            result.problems += compare_graphs(original, state["graph"], newer_widgets=self.newer_widgets)
        stem = f"subgraph-{path.stem}" if path.parent.name == "subgraphs" else path.stem
        result.screenshot = self.screenshot(stem)
        if result.problems:  # what the frontend made of the file, to diff against it
            (self.shots / f"{stem}.loaded.json").write_text(json.dumps(state["graph"], indent=1))
        self.phase = "idle"
        return result

    def load_errors(self) -> list[str]:
        """Load-time events that concern the pack (the frontend's own start-up errors are not ours)."""
        return [str(e) for e in self.events if e.phase == "load" and PACK_WORDS.search(e.text)]

    # ------------------------------------------------------------------------------ running from the UI
    def set_widgets(self, subs: dict[str, dict]) -> list[str]:
        """Type values into the loaded graph's widgets as a user would: {node type: {widget: value}};
        a widget whose input is linked is left alone. Returns what was changed."""
        return self.page.evaluate(SET_WIDGETS_JS, subs)

    def click_run(self, timeout: float = 60) -> dict:
        """Click the frontend's Run (Queue) button; returns the server's answer to the POST /prompt it sends
        (``status`` and ``body``: the prompt_id, or the validation errors) and what it sent (``sent``)."""
        self.phase = "run"
        candidates = [self.page.get_by_role("button", name="Run", exact=True),
                      self.page.locator("[data-testid='queue-button']"),
                      self.page.get_by_role("button", name=re.compile(r"^(Run|Queue)$"))]
        button = next((c.first for c in candidates if c.count()), None)
        if button is None:
            raise AssertionError("no Run / Queue button on the page")
        with self.page.expect_response(lambda r: r.url.split("?")[0].endswith("/prompt")
                                       and r.request.method == "POST", timeout=timeout * 1000) as info:
            button.click()
        resp = info.value
        try:
            body = resp.json()
        except Exception:  # noqa: BLE001 (an HTML error page)
            body = resp.text()
        return {"status": resp.status, "body": body, "sent": resp.request.post_data_json}

    def wait_previews(self, node_ids: list, timeout: float = 30) -> bool:
        """Wait until the given preview nodes show their pictures; False when they do not in time."""
        try:
            self.page.wait_for_function(PREVIEWS_JS, arg=node_ids, timeout=timeout * 1000)
            return True
        except Exception:  # noqa: BLE001 (Playwright's TimeoutError): the caller reports what is missing
            return False

    def nodes_view(self) -> list[dict]:
        """What each node shows: widget values (text previews included), its preview images as loaded."""
        return self.page.evaluate(NODES_JS)

    def fit_view(self) -> None:
        self.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        self.page.wait_for_timeout(500)

    def focus(self, node_id, name: str, scale: float = 1.3) -> Path:
        """Screenshot of one node at a readable zoom, centred."""
        self.page.evaluate(FOCUS_JS, {"id": node_id, "scale": scale})
        self.page.wait_for_timeout(600)
        return self.screenshot(name)


SET_WIDGETS_JS = """
(subs) => {
  const g = window.app.rootGraph || window.app.graph, changed = [];
  for (const node of g.nodes) {
    for (const [name, value] of Object.entries(subs[node.type] || {})) {
      const w = (node.widgets || []).find(w => w.name === name);
      if (!w) continue;
      const input = (node.inputs || []).find(i => i.widget?.name === name || i.name === name);
      if (input && input.link != null) continue;
      w.value = value;
      w.callback?.(value, window.app.canvas, node);
      changed.push(`${node.id} ${node.type}.${name}=${value}`);
    }
  }
  window.app.canvas.setDirty(true, true);
  return changed;
}
"""

NODES_JS = """
() => {
  const g = window.app.rootGraph || window.app.graph;
  return g.nodes.map(n => ({
    id: n.id, type: n.type, title: n.title,
    widgets: (n.widgets || []).map(w => ({name: w.name, type: w.type,
      value: typeof w.value === 'string' ? w.value.slice(0, 4000) : (typeof w.value === 'object' ? null : w.value),
      dom: (w.element?.value ?? w.element?.innerText ?? null)?.slice?.(0, 4000) ?? null})),
    imgs: (n.imgs || []).map(i => ({src: i.src, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})),
    outputs: window.app.nodeOutputs?.[String(n.id)] ?? null,
  }));
}
"""

FOCUS_JS = """
({id, scale}) => {
  const c = window.app.canvas, n = (window.app.rootGraph || window.app.graph).getNodeById(id);
  const el = c.canvas, w = el.clientWidth, h = el.clientHeight;
  c.ds.scale = scale;  // the node's centre in the middle of the visible canvas
  c.ds.offset[0] = w / (2 * scale) - (n.pos[0] + n.size[0] / 2);
  c.ds.offset[1] = h / (2 * scale) - (n.pos[1] + n.size[1] / 2);
  c.setDirty(true, true);
}
"""

#: True once every preview node the server sent pictures for shows them, loaded.
PREVIEWS_JS = """
(ids) => ids.every(id => {
  const n = (window.app.rootGraph || window.app.graph).getNodeById(id);
  return n && n.imgs && n.imgs.length && n.imgs.every(i => i.complete && i.naturalWidth > 0);
})
"""
