#!/usr/bin/env bash
# Browser tests of the workflows in ComfyUI's real web frontend (headless Debian Chromium + Playwright).
#
#   tools/browser_test.sh guard [pytest args]   # CI guard, no ComfyUI: frontend packages from PyPI + fake backend
#   tools/browser_test.sh old   [pytest args]   # real ComfyUI 0.3.64 (frontend 1.27.10) with the pack + tiny models
#   tools/browser_test.sh new   [pytest args]   # real ComfyUI 0.33.0 (frontend 1.48.7)
#   (old = 0.3.64, new = 0.33 as in tools/comfy_real_test.sh; or an absolute path of a ComfyUI checkout)
#
# Installs what it needs: Debian's chromium when /usr/bin/chromium is missing (apt-get, as root), the browser
# venv .venv-browser (tests/browser/requirements.txt), and for `guard` the frontend packages of the recorded
# ComfyUI versions (tests/browser/recorded/) into $RATIONALREWARDS_FRONTENDS (default
# ~/.cache/rationalrewards-frontends). The pack's node definitions are generated with .venv's Python
# (run `bash .ci/run` once first). `old`/`new` use the environments of ../shared/comfy (setup_comfyui.sh
# --models --canned, setup_comfyui_new.sh) under $COMFY_ROOT (default ~/.cache/rationalrewards-comfy);
# RATIONALREWARDS_COMFY_PORT picks the server's port.
# Screenshots and a report.json per run: out/browser/<guard-FRONTEND | comfyui-VERSION>/.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-guard}
shift || true
PY=${PY:-python3}
BVENV=${RATIONALREWARDS_BROWSER_VENV:-.venv-browser}
FRONTENDS=${RATIONALREWARDS_FRONTENDS:-$HOME/.cache/rationalrewards-frontends}
COMFY_ROOT=${COMFY_ROOT:-$HOME/.cache/rationalrewards-comfy}
quiet_pip() { "$@" 2>&1 | { grep -v "^WARNING: Location '" || true; }; }

if [ -z "${RATIONALREWARDS_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium > /dev/null
fi
[ -x "$BVENV/bin/python" ] || "$PY" -m venv "$BVENV"
quiet_pip "$BVENV/bin/pip" install -q -r tests/browser/requirements.txt
export RATIONALREWARDS_BROWSER_REQUIRED=1 PYTHONDONTWRITEBYTECODE=1

case "$MODE" in
  guard)
    [ -x .venv/bin/python ] || { echo ".venv is missing: run 'bash .ci/run' first (it generates the pack's node definitions)" >&2; exit 1; }
    for v in $("$PY" -c 'import glob, gzip, json
for f in sorted(glob.glob("tests/browser/recorded/comfyui-*.json.gz")):
    print(json.loads(gzip.open(f).read())["_note"]["frontend_version"])'); do
      if ! [ -f "$FRONTENDS/$v/comfyui_frontend_package/static/index.html" ]; then
        echo "== installing comfyui-frontend-package==$v"
        quiet_pip "$BVENV/bin/pip" install -q --no-deps --target "$FRONTENDS/$v" "comfyui-frontend-package==$v"
      fi
    done
    RATIONALREWARDS_FRONTENDS=$FRONTENDS RATIONALREWARDS_PACK_PYTHON=$PWD/.venv/bin/python \
      "$BVENV/bin/python" -m pytest -q tests/browser/test_graph_compare.py tests/browser/test_drop_guard.py "$@"
    ;;
  old|0.3.64|new|0.33|0.33.0|/*)
    # The real server as tests/test_comfyui_real.py starts it (its Python, database and tiny-model choices;
    # the same names as tools/comfy_real_test.sh), with the canned tiny critic.
    case "$MODE" in old|0.3.64) COMFY=$COMFY_ROOT/ComfyUI ;; new|0.33|0.33.0) COMFY=$COMFY_ROOT/ComfyUI-new ;; *) COMFY=$MODE ;; esac
    [ -f "$COMFY/main.py" ] || { echo "no ComfyUI at $COMFY: see ../shared/comfy/README.md" >&2; exit 1; }
    first_existing() { for p in "$@"; do [ -e "$p" ] && { echo "$p"; return; }; done; }
    RATIONALREWARDS_TINY_CRITIC=${RATIONALREWARDS_TINY_CRITIC:-$(first_existing \
      "$COMFY/models/rationalrewards/tiny-critic-canned" "$COMFY_ROOT/tiny-critic-canned")}
    RATIONALREWARDS_TINY_SD15=${RATIONALREWARDS_TINY_SD15:-$(first_existing \
      "$COMFY/models/checkpoints/tiny-sd15.safetensors" "$COMFY_ROOT/ComfyUI/models/checkpoints/tiny-sd15.safetensors")}
    [ -n "$RATIONALREWARDS_TINY_CRITIC" ] || { echo "no canned tiny critic (setup_comfyui.sh --canned)" >&2; exit 1; }
    export RATIONALREWARDS_COMFYUI=$COMFY RATIONALREWARDS_TINY_CRITIC RATIONALREWARDS_TINY_SD15
    RATIONALREWARDS_PACK_PYTHON=$PWD/.venv/bin/python "$BVENV/bin/python" -m pytest -q -s -rxX tests/browser/test_browser_real.py "$@"
    ;;
  *) echo "usage: tools/browser_test.sh guard|old|new|COMFYUI_DIR [pytest args]" >&2; exit 2 ;;
esac
