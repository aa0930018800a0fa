#!/usr/bin/env bash
# Browser tests of the workflows in ComfyUI's real web frontend (headless Debian Chromium + Playwright).
#
#   tools/browser_test.sh guard [pytest args]   # CI guard, no ComfyUI: frontend packages from PyPI + fake backend
#   tools/browser_test.sh old   [pytest args]   # real ComfyUI 0.3.64 (frontend 1.27.10) with the pack + tiny models
#   tools/browser_test.sh new   [pytest args]   # real ComfyUI 0.33.0 (frontend 1.48.7)
#
# Installs what it needs: Debian's chromium when /usr/bin/chromium is missing (apt-get, as root), the browser
# venv .venv-browser (tests/browser/requirements.txt), and for `guard` the frontend packages of the recorded
# ComfyUI versions (tests/browser/recorded/) into $RATIONALREWARDS_FRONTENDS (default
# ~/.cache/rationalrewards-frontends). The pack's node definitions are generated with .venv's Python
# (run `bash .ci/run` once first). `old`/`new` use the environments of ../shared/comfy (setup_comfyui.sh
# --models --canned, setup_comfyui_new.sh) under $COMFY_ROOT (default ~/.cache/rationalrewards-comfy).
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
  old|new)
    if [ "$MODE" = old ]; then COMFY=$COMFY_ROOT/ComfyUI; CPY=$COMFY_ROOT/comfy-venv/bin/python
    else COMFY=$COMFY_ROOT/ComfyUI-new; CPY=$COMFY_ROOT/comfy-new-venv/bin/python; fi
    [ -f "$COMFY/main.py" ] && [ -x "$CPY" ] || { echo "no ComfyUI at $COMFY (or no $CPY): see ../shared/comfy/README.md" >&2; exit 1; }
    CRITIC=${RATIONALREWARDS_TINY_CRITIC:-}
    if [ -z "$CRITIC" ]; then
      for c in "$COMFY/models/rationalrewards/tiny-critic-canned" "$COMFY_ROOT/tiny-critic-canned"; do
        if [ -f "$c/config.json" ]; then CRITIC=$c; break; fi
      done
    fi
    [ -n "$CRITIC" ] || { echo "no canned tiny critic (setup_comfyui.sh --canned)" >&2; exit 1; }
    SD15=${RATIONALREWARDS_TINY_SD15:-$COMFY_ROOT/ComfyUI/models/checkpoints/tiny-sd15.safetensors}
    RATIONALREWARDS_COMFYUI=$COMFY RATIONALREWARDS_COMFY_PYTHON=$CPY RATIONALREWARDS_TINY_CRITIC=$CRITIC \
      RATIONALREWARDS_TINY_SD15=$SD15 RATIONALREWARDS_PACK_PYTHON=$PWD/.venv/bin/python \
      "$BVENV/bin/python" -m pytest -q -s tests/browser/test_browser_real.py "$@"
    ;;
  *) echo "usage: tools/browser_test.sh guard|old|new [pytest args]" >&2; exit 2 ;;
esac
