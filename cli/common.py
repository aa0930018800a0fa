"""What the critique, refine and score commands share: critic options and loading, image loading,
the model folder, progress output.

``--critic`` takes three forms, told apart here once:

* ``http://...`` / ``https://...``: an OpenAI-compatible server (vLLM, SGLang, ...) -> RemoteCritic;
  ``--model`` names the served model (default: the first one the server lists).
* an existing folder: a RationalRewards (Qwen3-VL) model folder -> LocalCritic.
* a Hugging Face repo id (default ``TIGER-Lab/RationalRewards-8B-T2I``, or ``-Edit`` for edits): looked
  up in, and on first use downloaded into, the models folder (``$RATIONALREWARDS_MODELS``, default
  ``~/.cache/rationalrewards/models``) by models/store.py.

Every failure of a model argument or an input file becomes one ``UsageError`` line (exit code 2).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from PIL import Image, UnidentifiedImageError

from ..models.backends.base import Callbacks, CriticBackend, GenerationSettings
from ..models.errors import CriticError, ImageInputError
from ..models.images import critic_size_problem
from ..models.store import KNOWN_REPOS
from . import UsageError

MODELS_ENV = "RATIONALREWARDS_MODELS"
DEFAULT_T2I_CRITIC, DEFAULT_EDIT_CRITIC = KNOWN_REPOS
DTYPE_CHOICES = ("auto", "bf16", "fp16", "fp32")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def models_dir() -> Path:
    """Where repo ids are looked up and downloaded: $RATIONALREWARDS_MODELS or ~/.cache/rationalrewards/models."""
    env = os.environ.get(MODELS_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rationalrewards" / "models"


def is_url(spec: str | None) -> bool:
    """True for an http(s) address (a remote critic)."""
    return bool(spec) and spec.strip().lower().startswith(("http://", "https://"))


def add_critic_args(p, *, seed_help: str = "sampling seed of the critic (default 42)") -> None:
    """The critic options every command takes."""
    g = p.add_argument_group("critic")
    g.add_argument("--critic", metavar="DIR|HF_ID|URL",
                   help=f"critic model folder, Hugging Face repo id or OpenAI-compatible server URL "
                        f"(default {DEFAULT_T2I_CRITIC}, or {DEFAULT_EDIT_CRITIC} with --source; repo ids are "
                        f"downloaded into ${MODELS_ENV} or ~/.cache/rationalrewards/models)")
    g.add_argument("--model", metavar="NAME", help="served model name for a URL critic (default: the first the server lists)")
    g.add_argument("--api-key-env", metavar="VAR", help="NAME of the environment variable holding the URL critic's API key")
    g.add_argument("--device", default="auto", help="auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps")
    g.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                   help="critic weights dtype (auto: bf16 or fp16 on a GPU, fp32 on cpu)")
    g.add_argument("--quantization", default="none", choices=("none", "8bit", "4bit", "fp8"),
                   help="quantization of the local critic: 8bit/4bit (bitsandbytes, CUDA; 8bit is the slowest) or "
                        "fp8 (torchao; GPUs with compute capability 8.9+)")
    g.add_argument("--speed", default="auto", choices=("auto", "compiled", "standard"),
                   help="local critic decoding: compiled (static KV cache + torch.compile; each new batch/length "
                        "shape compiles once), standard, or auto (compiled on a CUDA GPU where it can run)")
    g.add_argument("--max-new-tokens", type=int, default=2048, metavar="N", help="critic answer length cap (default 2048)")
    g.add_argument("--temperature", type=float, default=0.1, metavar="T", help="critic temperature; 0 = greedy (default 0.1)")
    g.add_argument("--seed", type=int, default=42, metavar="S", help=seed_help)


def generation_settings(args) -> GenerationSettings:
    """The critic's GenerationSettings from the command line options."""
    try:
        return GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    except ValueError as e:
        raise UsageError(f"{e} (check --max-new-tokens / --temperature)") from None


def load_critic(args, *, edit: bool = False, concurrency: int | None = None) -> CriticBackend:
    """Load the critic ``args.critic`` names (or the default for the request kind); UsageError on failure.

    ``concurrency``: requests in flight for a URL critic, images per generate batch for a local one.
    """
    spec = (args.critic or "").strip() or (DEFAULT_EDIT_CRITIC if edit else DEFAULT_T2I_CRITIC)
    try:
        if is_url(spec):
            return _remote_critic(spec, args, concurrency)
        if args.model:
            raise UsageError("--model is only for a URL critic; a folder or repo id names the model itself")
        from ..models.backends.local import LocalCritic
        from ..models.store import resolve_model

        root = models_dir()
        # The command line takes folder paths too: the user owns this machine (nodes do not).
        folder = resolve_model(spec, [root], allow_paths=True, download_root=root)
        return LocalCritic.from_pretrained(folder, dtype=args.dtype, quantization=args.quantization,
                                           device=args.device, speed=getattr(args, "speed", "auto"),
                                           batch_size=max(1, concurrency or 4))
    except CriticError as e:
        raise UsageError(f"--critic {spec}: {e}") from None


def _remote_critic(url: str, args, concurrency: int | None) -> CriticBackend:
    from ..models.backends.remote import RemoteCritic

    model = args.model
    if not model:
        probe = RemoteCritic(url, "probe", api_key_env=args.api_key_env, retries=0, timeout=30)
        try:
            served = probe.list_models()
        except CriticError as e:
            raise UsageError(f"--critic {url}: cannot list the served models ({e}); pass --model NAME") from None
        if not served:
            raise UsageError(f"--critic {url}: the server lists no models; pass --model NAME")
        model = served[0]
    return RemoteCritic(url, model, api_key_env=args.api_key_env, max_concurrency=max(1, concurrency or 4))


def load_image(path: str | os.PathLike, what: str = "image", *, for_critic: bool = True) -> Image.Image:
    """Open and fully decode an image file as RGB; UsageError naming the file for anything unreadable,
    and (``for_critic``) for a size the critic cannot read, so that fails before a model loads."""
    p = _existing_image_file(path, what)
    try:
        with Image.open(p) as im:
            im.load()  # decode now: a truncated file fails here, not later inside the critic
            rgb = im.convert("RGB") if im.mode != "RGB" else im.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UsageError(f"{what} {p}: not a readable image ({type(e).__name__}: {e})") from None
    if for_critic:
        _check_critic_size(p, what, *rgb.size)
    return rgb


def check_image_file(path: str | os.PathLike, what: str = "image") -> None:
    """Check an image file from its header only (exists, is an image, a size the critic reads): cheap
    enough for every file of a large folder before any model loads."""
    p = _existing_image_file(path, what)
    try:
        with Image.open(p) as im:
            size = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UsageError(f"{what} {p}: not a readable image ({type(e).__name__}: {e})") from None
    _check_critic_size(p, what, *size)


def _existing_image_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {p}: no such file")
    if p.is_dir():
        raise UsageError(f"{what} {p}: is a folder, not an image file")
    return p


def _check_critic_size(p: Path, what: str, width: int, height: int) -> None:
    problem = critic_size_problem(width, height, f"{what} {p}")
    if problem:
        raise UsageError(problem)


def run_critic(call, *args, **kwargs) -> Any:
    """Call a critic method; turn input and critic failures into UsageError lines."""
    try:
        return call(*args, **kwargs)
    except ImageInputError as e:
        raise UsageError(str(e)) from None
    except CriticError as e:
        raise UsageError(f"critic failed: {e}") from None


class TokenProgress:
    """A tqdm bar of the critic's generated tokens on stderr (only when stderr is a terminal)."""

    def __init__(self, enabled: bool | None = None, desc: str = "critic"):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.desc = desc
        self._bar = None

    def on_tokens(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None or done < self._bar.n:
            self.close()
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=self.desc, unit="tok", leave=False, file=sys.stderr)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_status(self, text: str, fraction: float | None) -> None:
        """The critic's status (its one-time compile, a fallback note) on stderr, once per message."""
        if text != getattr(self, "_last_status", None):
            self._last_status = text
            self.close()
            print(f"critic: {text}", file=sys.stderr, flush=True)

    def callbacks(self) -> Callbacks:
        return Callbacks(on_tokens=self.on_tokens, on_status=self.on_status)


def iter_images(folder: Path) -> Iterator[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return iter(sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, so a crash or Ctrl-C never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def prepare_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder and make sure files can be written in it; UsageError (one line) when it,
    or a folder above it, is a file, or it cannot be created or written to."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p}: is a file, not a folder; give a folder for the results")
    _refuse_file_above(p, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot create the folder ({e.strerror or e})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=p, prefix=".rationalrewards-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot write files in this folder ({e.strerror or e}); "
                         "choose a folder you can write to") from None
    return p


def prepare_out_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Make sure ``path`` can be appended to (creating its folder), without changing an existing file;
    UsageError (one line) when it is a folder, a folder above it is a file, or it cannot be written."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise UsageError(f"{option} {p}: is a folder; give the file name, e.g. {p / 'scores.jsonl'}")
    _refuse_file_above(p, option)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot create its folder {p.parent} ({e.strerror or e})") from None
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot write this file ({e.strerror or e}); choose a place you can "
                         "write to") from None
    if not existed:
        p.unlink()  # only a probe: the file is created when the first result is written
    return p


def _refuse_file_above(p: Path, option: str) -> None:
    """A clear line when a folder on the way to ``p`` is a file (``afile.txt/scores.jsonl``)."""
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {p}: {parent} is a file, not a folder; give a path inside a folder")
            return
