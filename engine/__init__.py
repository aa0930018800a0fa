"""The ComfyUI-free engine: the refine policy, prompt-syntax keeping and the generate-critique-refine
loop shared by the ComfyUI loop nodes and the command line. Imports models/, never nodes/."""
from .history import STOP_REASONS, LoopResult, LoopState, history_json, summarize
from .loop import (MAX_ITERATIONS, SEED_POLICIES, Generator, GeneratorError, LoopCallbacks, LoopConfig,
                   LoopConfigError, LoopInterrupted, StepOutcome, batch_size, run_loop, select_image, start,
                   step)
from .prompt_syntax import (CLIP_WINDOW, PromptSyntax, WeightedGroup, estimate_clip_tokens, extract_syntax,
                            fit_token_window, plain_text, prompt_tokens, restore_syntax)
from .refine import (DEFAULT_REWRITE_INSTRUCTION, Decision, RefineOptionError, build_rewrite_messages,
                     clean_rewrite, make_critic_rewriter, refine_prompt)

__all__ = [n for n in dir() if not n.startswith("_")]
