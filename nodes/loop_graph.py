"""Graph Loop nodes: Loop Start / Loop End around the user's own sampling subgraph (recursive expansion).

Loop Start hands the current prompt (and iteration, seed) to the user's own encoder; everything
between Start and End is the loop body. Loop End critiques the body's IMAGE with engine.loop.step.
When a stop rule fires it returns the results; otherwise it clones the body with GraphBuilder, sets
the cloned Start's prompt/seed/state, clones itself as the recursion, and returns an expansion whose
outputs are the recursion's outputs. Nodes outside the body (checkpoint loader, empty latent,
LoadImage, the critic loader) keep their original ids, so ComfyUI reuses their cached outputs.

How the state travels: the loop state (engine LoopState, images included, plus the loop's root id)
is a ``LoopCarry`` object set as the constant ``loop_state`` input of the cloned Start. A
non-primitive constant is never a cache hit in ComfyUI, so every iteration's body runs; the Start
passes it on inside its ``flow`` output value. The flow socket is an ordinary link (not a rawLink):
Loop End needs the Start's resolved values (the first prompt may come from a linked text node),
and it reads the Start's id from its own ``flow`` input in DYNPROMPT.

Expansion ids: prefix ``"{root}.rr{k}."`` (root = the Loop End's id in the first iteration, k = the
iteration being started) + the original id of each cloned node. They are deterministic, stay the
same length however many iterations run, and cannot collide with another loop (nested loops have
another root) or with GraphBuilder's default ``"{id}.{n}.{m}."`` prefixes. Ids are opaque strings, so
subgraph ids like "54:73" work. Every clone's display id is the user's original node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from comfy_api.latest import io, ui

from ..engine.history import LoopResult, LoopState
from ..engine.loop import LoopCallbacks, LoopConfig, LoopConfigError, start, step
from . import host
from .common import checks_combos
from .loop_common import (LOOP_CATEGORY, loop_outputs, max_iterations_input, node_text, refine_config,
                          refine_inputs, result_outputs, result_ui, seed_policy_input)
from .types import Critic, as_critic

START_CLASS = "RationalRewardsLoopStart"
END_CLASS = "RationalRewardsLoopEnd"
#: Loop Start's output sockets (the order of its schema outputs).
FLOW_OUT, PROMPT_OUT, ITERATION_OUT, SEED_OUT = 0, 1, 2, 3
N_END_OUTPUTS = 7

Flow = io.Custom("RATIONALREWARDS_LOOP")
StateSocket = io.Custom("RATIONALREWARDS_LOOP_STATE")

NO_PROMPT_WARNING = ("the loop body does not use Loop Start's prompt output: refining cannot change the image. "
                     "Connect Loop Start's 'prompt' to the text input of your encoder (e.g. CLIP Text Encode "
                     "with its text converted to an input).")


class LoopGraphError(ValueError):
    """The loop's wiring is wrong; the message names the node and the fix."""


@dataclass(frozen=True)
class LoopCarry:
    """What the Loop End hands the next iteration's Loop Start: the state, and the loop's root id."""

    state: LoopState
    root: str


@dataclass(frozen=True)
class LoopFlow:
    """The value on Loop Start's flow output: what Loop End needs to critique and go on."""

    start_id: str | None
    prompt: str
    seed: int
    iteration: int
    max_iterations: int
    seed_policy: str
    carry: LoopCarry | None = None


def is_link(value: Any) -> bool:
    """ComfyUI's link test: a two-item list [node id, output index]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float)) and not isinstance(value[1], bool))


def _link_in(dynprompt: Any, value: Any) -> bool:
    # A list widget value can look like a link; it is one only when it names a node of the prompt.
    return is_link(value) and dynprompt.has_node(value[0])


def _plain_value(value: Any) -> Any:
    """A list widget value is sent wrapped as {"__value__": [...]}; expansion nodes are not
    validated (which is where ComfyUI unwraps it), so the clone gets the plain value."""
    if isinstance(value, dict) and set(value) == {"__value__"}:
        return value["__value__"]
    return value


class LoopStartNode(io.ComfyNode):
    """Open a refinement loop: the current prompt for the user's encoder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=START_CLASS,
            display_name="RationalRewards Loop Start",
            category=LOOP_CATEGORY,
            description="Opens a generate-critique-refine loop around your own sampling nodes. Wire 'prompt' into "
            "your text encoder (CLIP Text Encode, TextEncodeQwenImageEdit, a Flux Kontext chain, ...), decode to an "
            "IMAGE and connect it and 'flow' to RationalRewards Loop End. The nodes in between run again with the "
            "refined prompt until the critic is satisfied; nodes outside (checkpoint loader, empty latent, "
            "LoadImage) run once.",
            inputs=[
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The first prompt; later iterations use the refined prompt."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="The first iteration's seed, on the 'seed' output for your sampler."),
                max_iterations_input(),
                seed_policy_input(),
                StateSocket.Input("loop_state", optional=True,
                                  tooltip="Set by Loop End when it starts the next iteration; leave unconnected."),
            ],
            outputs=[
                Flow.Output("flow", display_name="flow", tooltip="Connect to RationalRewards Loop End's flow."),
                io.String.Output("current_prompt", display_name="prompt",
                                 tooltip="This iteration's prompt: connect it to your text encoder."),
                io.Int.Output("current_iteration", display_name="iteration", tooltip="This iteration's number, from 0."),
                io.Int.Output("current_seed", display_name="seed",
                              tooltip="This iteration's seed (fixed or incremented, see seed_policy)."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    @checks_combos
    def execute(cls, prompt, seed, max_iterations, seed_policy, loop_state=None) -> io.NodeOutput:
        n = int(max_iterations)
        if loop_state is not None:
            if not isinstance(loop_state, LoopCarry):
                raise LoopGraphError("loop_state is set by RationalRewards Loop End; disconnect whatever feeds it")
            state = loop_state.state
            prompt, seed, iteration = state.prompt, state.seed, state.iteration
            text = f"iteration {iteration + 1}/{state.max_iterations}"
        else:
            if not isinstance(prompt, str) or not prompt.strip():
                raise LoopConfigError("Loop Start's prompt is empty: enter the prompt to generate and refine")
            _, warnings = LoopConfig(max_iterations=n, seed_policy=seed_policy).checked()
            iteration = 0
            text = "\n".join([f"warning: {w}" for w in warnings] + ["iteration 1"])
            host.send_text(cls.hidden.unique_id, text)
        flow = LoopFlow(cls.hidden.unique_id, prompt, int(seed), iteration, n, seed_policy, loop_state)
        return io.NodeOutput(flow, prompt, iteration, int(seed), ui=ui.PreviewText(text))


@dataclass
class Body:
    """The nodes between a Loop Start and a Loop End (both excluded), in a deterministic order."""

    nodes: list[str]
    prompt_used: bool
    image_from_body: bool


def collect_body(dynprompt: Any, end_id: str, start_id: str) -> Body:
    """Walk upstream from ``end_id`` (ComfyUI's while-loop recipe): the body is every node that is
    both upstream of the End and downstream of the Start."""
    children: dict[str, list[str]] = {}
    order: list[str] = []
    stack = [end_id]
    seen = {end_id}
    while stack:  # iterative: a long body must not hit Python's recursion limit
        node_id = stack.pop()
        for value in dynprompt.get_node(node_id).get("inputs", {}).values():
            if not _link_in(dynprompt, value):
                continue
            parent = value[0]
            children.setdefault(parent, []).append(node_id)
            if parent not in seen:
                seen.add(parent)
                order.append(parent)
                stack.append(parent)
    downstream: set[str] = set()
    stack = [start_id]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in downstream:
                downstream.add(child)
                stack.append(child)
    body = [n for n in order if n in downstream and n not in (start_id, end_id)]
    prompt_used = any(_link_in(dynprompt, v) and v[0] == start_id and int(v[1]) == PROMPT_OUT
                      for n in body for v in dynprompt.get_node(n).get("inputs", {}).values())
    image = dynprompt.get_node(end_id).get("inputs", {}).get("image")
    image_from_body = _link_in(dynprompt, image) and (image[0] in downstream or image[0] == start_id)
    return Body(body, prompt_used, image_from_body)


def find_start(dynprompt: Any, end_id: str) -> str:
    """The id of the Loop Start feeding this Loop End's flow input, or a LoopGraphError."""
    link = dynprompt.get_node(end_id).get("inputs", {}).get("flow")
    if not _link_in(dynprompt, link):
        raise LoopGraphError("Loop End's 'flow' is not connected: connect it to RationalRewards Loop Start's flow")
    node = dynprompt.get_node(link[0])
    if node.get("class_type") != START_CLASS:
        raise LoopGraphError(f"Loop End's 'flow' comes from node {link[0]} ({node.get('class_type')}), not from a "
                             "RationalRewards Loop Start: connect Loop Start's flow output to it")
    return link[0]


def build_expansion(dynprompt: Any, end_id: str, start_id: str, body: Body, carry: LoopCarry) -> tuple[dict, Any]:
    """The next iteration's graph: the body and the Start cloned (the Start with the new prompt, seed
    and state), the End cloned as the recursion. Returns (graph, recursion node)."""
    from comfy_execution.graph_utils import GraphBuilder

    state = carry.state
    graph = GraphBuilder(prefix=f"{carry.root}.rr{state.iteration}.")
    originals = [start_id, *body.nodes, end_id]
    local: dict[str, str] = {}
    for node_id in originals:
        display = dynprompt.get_display_node_id(node_id)
        # The original id keeps the ids short and readable; a clash (never expected) falls back to the id.
        local[node_id] = display if display not in local.values() else node_id
    for node_id in originals:
        graph.node(dynprompt.get_node(node_id)["class_type"], local[node_id]).set_override_display_id(
            dynprompt.get_display_node_id(node_id))
    for node_id in originals:
        clone = graph.lookup_node(local[node_id])
        for key, value in dynprompt.get_node(node_id).get("inputs", {}).items():
            if _link_in(dynprompt, value) and value[0] in local:
                clone.set_input(key, graph.lookup_node(local[value[0]]).out(value[1]))
            else:
                clone.set_input(key, _plain_value(value))  # outside nodes keep their ids: cached, not re-run
    start_clone = graph.lookup_node(local[start_id])
    start_clone.set_input("prompt", state.prompt)
    start_clone.set_input("seed", int(state.seed))
    start_clone.set_input("loop_state", carry)
    return graph.finalize(), graph.lookup_node(local[end_id])


class LoopEndNode(io.ComfyNode):
    """Close a refinement loop: critique, then stop or run the body again with the refined prompt."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=END_CLASS,
            display_name="RationalRewards Loop End",
            category=LOOP_CATEGORY,
            description="Closes a loop opened by RationalRewards Loop Start: the critic judges the IMAGE your nodes "
            "decoded; if some aspect needs work the prompt is refined and the nodes between Start and End run "
            "again (they light up as they run), until the critic is satisfied, the score stops improving or "
            "max_iterations is reached. Outputs the best image and prompt, the last image, every iteration's "
            "image and the history.",
            inputs=[
                Flow.Input("flow", tooltip="From RationalRewards Loop Start's flow output."),
                io.Image.Input("image", tooltip="The IMAGE your loop body decodes from Loop Start's prompt."),
                Critic.Input("critic", tooltip="From RationalRewards Model Loader or Remote Critic."),
                *refine_inputs(),
                io.Image.Input("source_image", optional=True,
                               tooltip="For image edits: the source image, so the critic judges an edit."),
            ],
            outputs=loop_outputs(),
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            enable_expand=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        return float("nan")  # never equal to itself: the loop always runs again when queued

    @classmethod
    @checks_combos
    def execute(cls, flow, image, critic, rule, threshold, patience, keep_phrases, token_window, overflow,
                source_image=None) -> io.NodeOutput:
        if not isinstance(flow, LoopFlow):
            raise LoopGraphError(f"Loop End's 'flow' must come from RationalRewards Loop Start, got "
                                 f"{type(flow).__name__}: connect Loop Start's flow output to it")
        backend = as_critic(critic)
        uid, dyn = cls.hidden.unique_id, cls.hidden.dynprompt
        start_id = find_start(dyn, uid) if dyn is not None else flow.start_id
        display = dyn.get_display_node_id(uid) if dyn is not None else uid
        config = LoopConfig(max_iterations=flow.max_iterations, seed=flow.seed, seed_policy=flow.seed_policy,
                            source=source_image, **refine_config(rule, threshold, patience, keep_phrases,
                                                                 token_window, overflow))
        if flow.carry is not None:
            state, root = flow.carry.state, flow.carry.root
        else:
            state, _ = start(flow.prompt, config)
            root = uid
        body = collect_body(dyn, uid, start_id) if dyn is not None else None
        if body is not None and not (body.prompt_used and body.image_from_body) and NO_PROMPT_WARNING not in state.warnings:
            state = state.copy()
            state.warnings.append(NO_PROMPT_WARNING)
            host.send_text(display, f"warning: {NO_PROMPT_WARNING}")
        n = state.max_iterations
        callbacks = LoopCallbacks(is_interrupted=host.is_interrupted, on_status=host.status_callback(display))
        state, outcome = host.run_interruptible(
            lambda: step(state, image, backend, config, callbacks=callbacks, source=source_image))
        _progress(display, state, n)
        if outcome.stop:
            result = LoopResult.from_state(state)
            text = node_text(result)
            host.send_text(display, text)
            return io.NodeOutput(*result_outputs(result), ui=result_ui(text))
        if dyn is None:
            raise LoopGraphError("Loop End needs ComfyUI's DYNPROMPT to run the next iteration; run it in a ComfyUI "
                                 "graph (ComfyUI 0.3.64 or later)")
        graph, recurse = build_expansion(dyn, uid, start_id, body, LoopCarry(state, root))
        return io.NodeOutput(*[recurse.out(i) for i in range(N_END_OUTPUTS)], expand=graph)


def _progress(node_id: str, state: LoopState, n: int) -> None:
    """Iteration progress bar and a line for the last iteration on the user's Loop End node."""
    import comfy.utils

    comfy.utils.ProgressBar(n, node_id=node_id).update_absolute(state.iteration, n)
    entry = state.history[-1] if state.history else {}
    score = "-" if entry.get("overall") is None else f"{entry['overall']:.3f}"
    why = entry.get("error") or (entry.get("decision") or {}).get("reason", "")
    host.send_text(node_id, f"iteration {state.iteration}/{n}: score {score}: {why}")
