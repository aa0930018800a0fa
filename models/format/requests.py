"""Request builders: turn (kind, instruction, images) into chat messages RationalRewards understands.

The output is a list of chat messages in the content-part style both transformers' chat templates
and OpenAI-compatible servers take::

    [{"role": "system", "content": [{"type": "text", "text": ...}]},
     {"role": "user", "content": [{"type": "text", "text": ...}, {"type": "image", "image": IMG}, ...]}]

Images are passed through untouched (PIL images, tensors, anything the backend knows); each backend
converts the ``{"type": "image"}`` parts its own way. The wording lives in template files
(``templates/*.txt``); users can point the pack at their own file with the same placeholders.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from .aspects import Kind, get_kind

#: Longest instruction accepted. The model's context is 40,960 tokens and images take up to ~1,000
#: tokens each; a prompt longer than this is almost certainly a wiring mistake (a whole file or a
#: critique wired into the prompt), and would push the answer past the context.
MAX_INSTRUCTION_CHARS = 8000

_TEMPLATE_FILES = {
    "t2i": "pointwise_t2i.txt",
    "edit": "pointwise_edit.txt",
    "pairwise-t2i": "pairwise_t2i.txt",
    "pairwise-edit": "pairwise_edit.txt",
}
_SECTION = re.compile(r"^\[(system|user)\]\s*$")
_PLACEHOLDER = re.compile(r"\{(instruction|image:(\d+))\}")


class RequestError(ValueError):
    """Bad input to a request builder; the message names the input and the fix."""


class TemplateError(ValueError):
    """A request template file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Template:
    """A parsed request template: optional system text and the user text with placeholders."""

    kind: Kind
    system: str | None
    user: str
    source: str = "<text>"

    @classmethod
    def parse(cls, text: str, kind: str | Kind, source: str = "<text>") -> "Template":
        """Parse template text; raise TemplateError when sections or placeholders are wrong."""
        kind = get_kind(kind)
        sections: dict[str, list[str]] = {}
        current = None
        for line in text.replace("\r\n", "\n").split("\n"):
            if line.startswith("#!"):
                continue
            m = _SECTION.match(line)
            if m:
                if m.group(1) in sections:
                    raise TemplateError(f"template {source}: section [{m.group(1)}] appears twice")
                current = m.group(1)
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
            elif line.strip():
                raise TemplateError(
                    f"template {source}: text before the first [system] or [user] line; "
                    "start the file with [system] or [user]"
                )
        if "user" not in sections:
            raise TemplateError(f"template {source}: no [user] section; add a line '[user]' before the request text")
        user = "\n".join(sections["user"]).strip("\n")
        system = "\n".join(sections.get("system", [])).strip("\n") or None
        if system and _PLACEHOLDER.search(system):
            raise TemplateError(f"template {source}: placeholders belong in [user], not in [system]")
        found = [m.group(0) for m in _PLACEHOLDER.finditer(user)]
        if "{instruction}" not in found:
            raise TemplateError(f"template {source}: [user] has no {{instruction}} placeholder for the prompt")
        images = [int(m.group(2)) for m in _PLACEHOLDER.finditer(user) if m.group(2)]
        expected = list(range(1, kind.n_images + 1))
        if sorted(images) != expected:
            labels = ", ".join(f"{{image:{i}}} = {lbl}" for i, lbl in zip(expected, kind.image_labels))
            raise TemplateError(
                f"template {source}: a {kind.name} template needs each of {labels} exactly once; "
                f"found {', '.join(f'{{image:{i}}}' for i in images) or 'none'}"
            )
        return cls(kind=kind, system=system, user=user, source=source)

    def render(self, instruction: str, images: Sequence[Any]) -> list[dict[str, Any]]:
        """Fill the placeholders and return the chat messages."""
        parts: list[dict[str, Any]] = []
        pos = 0
        text = self.user
        for m in _PLACEHOLDER.finditer(text):
            chunk = text[pos:m.start()]
            if m.group(2):
                _append_text(parts, chunk)
                parts.append({"type": "image", "image": images[int(m.group(2)) - 1]})
            else:
                _append_text(parts, chunk + instruction)
                chunk = ""
            pos = m.end()
        _append_text(parts, text[pos:])
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.system}]})
        messages.append({"role": "user", "content": parts})
        return messages


def _append_text(parts: list[dict[str, Any]], text: str) -> None:
    if not text:
        return
    if parts and parts[-1]["type"] == "text":
        parts[-1] = {"type": "text", "text": parts[-1]["text"] + text}
    else:
        parts.append({"type": "text", "text": text})


def builtin_template_path(kind: str | Kind) -> Path:
    """Path of the pack's own template file for ``kind``."""
    kind = get_kind(kind)
    return Path(str(resources.files(__package__).joinpath("templates", _TEMPLATE_FILES[kind.name])))


def load_template(kind: str | Kind, path: str | Path | None = None) -> Template:
    """Load the built-in template for ``kind``, or the user's file at ``path``."""
    kind = get_kind(kind)
    p = Path(path) if path else builtin_template_path(kind)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"template file {p} does not exist; check the path or leave it empty for the built-in one") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"template file {p} cannot be read as UTF-8 text: {e}") from None
    return Template.parse(text, kind, source=str(p))


_BUILTIN_CACHE: dict[str, Template] = {}


@dataclass(frozen=True)
class ChatRequest:
    """A ready request: chat messages plus the images in the order they appear."""

    kind: str
    instruction: str
    messages: list[dict[str, Any]]
    images: tuple[Any, ...]


def check_instruction(instruction: Any, name: str = "prompt") -> str:
    """Validate a prompt / instruction string and return it stripped."""
    if not isinstance(instruction, str):
        raise RequestError(f"{name} must be text, got {type(instruction).__name__}; wire a STRING into '{name}'")
    s = instruction.strip()
    if not s:
        raise RequestError(f"{name} is empty: enter the prompt the image was generated from")
    if len(s) > MAX_INSTRUCTION_CHARS:
        raise RequestError(
            f"{name} is {len(s):,} characters long; the critic accepts at most {MAX_INSTRUCTION_CHARS:,}. "
            f"Shorten it, or check that the right text is wired into '{name}'"
        )
    return s


def build_request(
    kind: str | Kind,
    instruction: str,
    images: Sequence[Any],
    template: Template | str | Path | None = None,
) -> ChatRequest:
    """Build the chat request for one critique (pointwise) or comparison (pairwise).

    ``images`` are in the kind's order: t2i ``[generated]``, edit ``[source, edited]``,
    pairwise-t2i ``[A, B]``, pairwise-edit ``[source, A, B]``.
    """
    kind = get_kind(kind)
    instruction = check_instruction(instruction)
    images = tuple(images)
    if len(images) != kind.n_images:
        raise RequestError(
            f"a {kind.name} request takes {kind.n_images} image(s) ({', '.join(kind.image_labels)}), "
            f"got {len(images)}"
        )
    if template is None:
        tpl = _BUILTIN_CACHE.get(kind.name)
        if tpl is None:
            tpl = _BUILTIN_CACHE[kind.name] = load_template(kind)
    elif isinstance(template, Template):
        if template.kind.name != kind.name:
            raise TemplateError(f"template {template.source} is for {template.kind.name}, not {kind.name}")
        tpl = template
    else:
        tpl = load_template(kind, template)
    return ChatRequest(kind.name, instruction, tpl.render(instruction, images), images)


def build_text_request(system: str | None, user: str) -> list[dict[str, Any]]:
    """A text-only chat (no images), e.g. for rewriting a prompt with the critic's language model."""
    messages: list[dict[str, Any]] = []
    if system and system.strip():
        messages.append({"role": "system", "content": [{"type": "text", "text": system.strip()}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": user}]})
    return messages
