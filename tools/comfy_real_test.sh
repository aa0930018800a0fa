#!/usr/bin/env bash
# The opt-in real-ComfyUI test (tests/test_comfyui_real.py) against one ComfyUI, in one command:
#
#   tools/comfy_real_test.sh 0.3.64 [pytest args]   ComfyUI 0.3.64:  $COMFY_ROOT/ComfyUI     + comfy-venv
#   tools/comfy_real_test.sh 0.33   [pytest args]   newest release:  $COMFY_ROOT/ComfyUI-new + comfy-new-venv
#   tools/comfy_real_test.sh DIR    [pytest args]   any ComfyUI checkout (its Python: see the test's docstring)
#
# The environments and tiny models are the ones ../shared/comfy/setup_comfyui.sh (--models --canned) and
# setup_comfyui_new.sh build under $COMFY_ROOT (default ~/.cache/rationalrewards-comfy). Extra arguments go
# to pytest (e.g. -s to see the printed timings, -k cancel, or another test file to run against the same
# ComfyUI). Variables already set (RATIONALREWARDS_TINY_CRITIC, ..._TINY_SD15, ..._COMFY_PYTHON) win.
set -euo pipefail
cd "$(dirname "$0")/.."
COMFY_ROOT=${COMFY_ROOT:-$HOME/.cache/rationalrewards-comfy}

case "${1:-}" in
  0.3.64|old) checkout=$COMFY_ROOT/ComfyUI ;;
  0.33|0.33.0|new) checkout=$COMFY_ROOT/ComfyUI-new ;;
  ""|-h|--help) sed -n '2,12p' "$0"; exit 2 ;;
  *) checkout=$1 ;;
esac
shift
if [ ! -f "$checkout/main.py" ]; then
  echo "no ComfyUI checkout at $checkout: build it with ../shared/comfy/setup_comfyui.sh or setup_comfyui_new.sh" >&2
  exit 2
fi

first_existing() { for p in "$@"; do [ -e "$p" ] && { echo "$p"; return; }; done; }
export RATIONALREWARDS_COMFYUI=$checkout
# The canned tiny critic answers with a fixed critique, so the runs check real scores and refined prompts.
RATIONALREWARDS_TINY_CRITIC=${RATIONALREWARDS_TINY_CRITIC:-$(first_existing \
  "$checkout/models/rationalrewards/tiny-critic-canned" "$COMFY_ROOT/tiny-critic-canned" \
  "$checkout/models/rationalrewards/tiny-critic" "$COMFY_ROOT/tiny-critic")}
RATIONALREWARDS_TINY_SD15=${RATIONALREWARDS_TINY_SD15:-$(first_existing \
  "$checkout/models/checkpoints/tiny-sd15.safetensors" "$COMFY_ROOT/ComfyUI/models/checkpoints/tiny-sd15.safetensors")}
export RATIONALREWARDS_TINY_CRITIC RATIONALREWARDS_TINY_SD15

version=$(sed -n 's/^__version__ *= *"\(.*\)"/\1/p' "$checkout/comfyui_version.py" 2>/dev/null || true)
echo "ComfyUI ${version:-(unknown version)} at $checkout"
echo "tiny critic: ${RATIONALREWARDS_TINY_CRITIC:-none}  tiny SD1.5: ${RATIONALREWARDS_TINY_SD15:-none}"
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" -m pytest -q -rs tests/test_comfyui_real.py tests/test_comfyui_real_memory.py "$@"
