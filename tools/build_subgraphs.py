"""The pack's subgraph blueprints: subgraphs/<name>.json, which ComfyUI 0.3.67 and newer list in the node
library as ready-made nodes ("custom node published subgraphs"); 0.3.64 ignores the folder.

Each blueprint is self-contained like ComfyUI's own (the model loader inside, its model choice shown on the
node), so dropping it in and wiring an image is enough; double-click opens the graph inside to change more.
Written by tools/build_workflows.py together with the workflows.
"""
from __future__ import annotations

from workflow_builder import Graph, Port, blueprint

T2I = "TIGER-Lab/RationalRewards-8B-T2I"
CATEGORY = "RationalRewards"


def critique_and_refine_once(g: Graph, frontend_version: str) -> dict:
    loader = g.add("RationalRewardsModelLoader", {"model": T2I}, title="Load the critic")
    critic = g.add("RationalRewardsCritic")
    refiner = g.add("RationalRewardsPromptRefiner")
    card = g.add("RationalRewardsScoreCard")
    g.link(loader, "critic", critic, "critic")
    g.link(critic, "critique", refiner, "critique")
    g.link(critic, "critique", card, "critique")
    g.place(0, 0, "Critic", [loader])
    g.place(1, 0, "Critique", [critic])
    g.place(2, 0, "Refine and show", [refiner, card])
    return blueprint(
        g, "5b0f1c1e-7d1a-4c55-9d0e-2f6a3b8e9a01", "Critique and refine once",
        "Critiques the picture against its prompt with RationalRewards and returns the prompt to use next (the "
        "paper's refine rule), the scores and a score card: one step of the paper's test-time loop.",
        CATEGORY,
        inputs=[Port("image", [(critic, "image"), (card, "image")]),
                Port("prompt", [(critic, "prompt"), (refiner, "prompt")]),
                Port("model", [(loader, "model")], label="critic model"),
                Port("rule", [(refiner, "rule")]),
                Port("threshold", [(refiner, "threshold")])],
        outputs=[Port("prompt", [(refiner, "prompt")], label="refined prompt"),
                 Port("changed", [(refiner, "changed")]),
                 Port("overall", [(critic, "overall")]),
                 Port("score_card", [(card, "score_card")], label="score card"),
                 Port("critique", [(critic, "critique")])],
        frontend_version=frontend_version)


def best_of_n(g: Graph, frontend_version: str) -> dict:
    loader = g.add("RationalRewardsModelLoader", {"model": T2I}, title="Load the critic")
    critic = g.add("RationalRewardsCritic")
    best = g.add("RationalRewardsBestOfN", {"k": 1})
    g.link(loader, "critic", critic, "critic")
    g.link(critic, "critique", best, "critique")
    g.place(0, 0, "Critic", [loader])
    g.place(1, 0, "Score each picture", [critic])
    g.place(2, 0, "Keep the best", [best])
    return blueprint(
        g, "8c3d2e4f-1a5b-4f6c-8d7e-9a0b1c2d3e02", "Best of N",
        "Scores every picture of a batch on its own with RationalRewards and keeps the best k, best first, with "
        "the matching LATENT rows when a latent is connected.",
        CATEGORY,
        inputs=[Port("images", [(critic, "image"), (best, "images")]),
                Port("prompt", [(critic, "prompt")]),
                Port("latent", [(best, "latent")], label="latent (optional)"),
                Port("model", [(loader, "model")], label="critic model"),
                Port("k", [(best, "k")])],
        outputs=[Port("images", [(best, "images")], label="best images"),
                 Port("scores", [(best, "scores")]),
                 Port("latent", [(best, "latent")]),
                 Port("critique", [(best, "critique")])],
        frontend_version=frontend_version)


#: {file stem: builder}. The frontend names a blueprint after its file (node search, the node's title), so the
#: stems are the names users see; the search shows the category (RationalRewards) beside them.
BLUEPRINTS = {"Critique and refine once": critique_and_refine_once, "Best of N": best_of_n}


def build(defs: dict, frontend_version: str) -> dict[str, dict]:
    """{file stem: blueprint dict}."""
    return {stem: fn(Graph(defs), frontend_version) for stem, fn in BLUEPRINTS.items()}
