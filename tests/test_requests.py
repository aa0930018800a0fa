"""Request builders for the four kinds, templates (built-in and user files), prompt validation."""
import pytest

from rationalrewards.models.format import (KINDS, RequestError, Template, TemplateError, build_request,
                                           build_text_request, load_template)
from rationalrewards.models.format.aspects import ASPECT_TITLES
from rationalrewards.models.format.requests import MAX_INSTRUCTION_CHARS


def _parts(req):
    return [p for m in req.messages if m["role"] == "user" for p in m["content"]]


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_builds_in_documented_order(kind):
    k = KINDS[kind]
    imgs = [f"IMG{i}" for i in range(k.n_images)]
    req = build_request(kind, "  a red cube  ", imgs)
    assert req.instruction == "a red cube"
    assert req.images == tuple(imgs)
    roles = [m["role"] for m in req.messages]
    assert roles == ["system", "user"]
    parts = _parts(req)
    assert [p["image"] for p in parts if p["type"] == "image"] == imgs
    # each image part directly follows its label, in order
    text_before = [parts[i - 1]["text"] for i, p in enumerate(parts) if p["type"] == "image"]
    for label, before in zip(k.image_labels, text_before):
        assert before.rstrip().endswith(label + ":")
    text = "".join(p.get("text", "") for p in parts)
    assert "User Instruction: a red cube" in text
    # the trained structure: aspect names in order, headings, 1-4 scale, N/A rule
    positions = [text.index(f"{i + 1}. {ASPECT_TITLES[a]}:") for i, a in enumerate(k.aspects)]
    assert positions == sorted(positions)
    assert "# Detailed Judgement" in text and "# Summary:" in text and "N/A" in text
    assert "1-4" in text
    if k.pairwise:
        assert "## Score A:" in text and "## Winner:" in text and "Refined Request" not in text
    else:
        assert "## Score:" in text and "## Refined Request:" in text


def test_text_parts_are_merged_and_no_empty_parts():
    req = build_request("edit", "make it blue", ["S", "E"])
    parts = _parts(req)
    for a, b in zip(parts, parts[1:]):
        assert not (a["type"] == b["type"] == "text")
    assert all(p["text"] for p in parts if p["type"] == "text")


@pytest.mark.parametrize("prompt,msg", [("", "empty"), ("   \n", "empty"), (None, "must be text"),
                                        ("x" * (MAX_INSTRUCTION_CHARS + 1), "at most"),
                                        ("y" * 100_000, "characters long")])
def test_bad_prompts(prompt, msg):
    with pytest.raises(RequestError, match=msg) as e:
        build_request("t2i", prompt, ["I"])
    assert "prompt" in str(e.value)


def test_wrong_image_count():
    with pytest.raises(RequestError, match="takes 2 image"):
        build_request("edit", "p", ["only one"])


def test_user_template_file(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("#! my own\n[user]\nJudge {image:1} for: {instruction}\n", encoding="utf-8")
    req = build_request("t2i", "a cat", ["IMG"], template=str(f))
    assert [m["role"] for m in req.messages] == ["user"]
    assert _parts(req) == [{"type": "text", "text": "Judge "}, {"type": "image", "image": "IMG"},
                           {"type": "text", "text": " for: a cat"}]


def test_instruction_with_braces_is_not_reinterpreted(tmp_path):
    req = build_request("t2i", "a sign saying {image:1} {instruction}", ["IMG"])
    images = [p for p in _parts(req) if p["type"] == "image"]
    assert len(images) == 1
    assert "a sign saying {image:1} {instruction}" in "".join(p.get("text", "") for p in _parts(req))


@pytest.mark.parametrize("text,msg", [
    ("no sections", "before the first"),
    ("[system]\nhi {instruction}\n[user]\n{instruction} {image:1}", "belong in \\[user\\]"),
    ("[user]\n{image:1}", "no \\{instruction\\}"),
    ("[user]\n{instruction}", "exactly once"),
    ("[user]\n{instruction} {image:1} {image:1}", "exactly once"),
    ("[user]\n{instruction} {image:2}", "exactly once"),
    ("[system]\n[user]\n[user]\n", "twice"),
    ("[system]\nonly system", "no \\[user\\]"),
])
def test_bad_templates(text, msg):
    with pytest.raises(TemplateError, match=msg):
        Template.parse(text, "t2i")


def test_missing_template_file_and_kind_mismatch(tmp_path):
    with pytest.raises(TemplateError, match="does not exist"):
        load_template("t2i", tmp_path / "nope.txt")
    with pytest.raises(TemplateError, match="is for edit"):
        build_request("t2i", "p", ["I"], template=load_template("edit"))


def test_builtin_templates_parse():
    for kind in KINDS:
        assert load_template(kind).kind.name == kind


def test_text_request():
    assert build_text_request(None, "hi") == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert build_text_request("sys", "hi")[0]["role"] == "system"
