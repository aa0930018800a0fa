"""The browser tests' helper modules (harness, fake_comfy, graph_compare, ...) live next to them."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
