"""The shipped default bundle: valid, within its size budget, and the README's main command renders with it."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"
BUDGET_BYTES = 40 * 1024 * 1024


def test_default_bundle_is_valid_and_small_enough():
    bundle = load_bundle(DEFAULT)  # checksums, version, fields
    total = sum(p.stat().st_size for p in DEFAULT.rglob("*") if p.is_file())
    assert total <= BUDGET_BYTES, f"models/default is {total / 2**20:.1f} MiB, budget 40 MiB"
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    provenance = manifest["provenance"]
    assert provenance["unet"]["step"] > 0 and provenance["vocoder"]["step"] > 0
    assert "msanii-export" in provenance["export_command"]
    assert bundle.sample_rate == 44_100 and bundle.channels == 2


def test_readme_main_command_renders_ten_seconds_offline(tmp_path):
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^msanii-render generate --bundle models/default [^\n]*$", readme, re.M).group(0)
    args = command.split()[1:]
    args[args.index("--out") + 1] = str(tmp_path / "take1.wav")
    proc = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    audio, rate = sf.read(tmp_path / "take1.wav", always_2d=True)
    assert rate == 44_100 and audio.shape == (441_000, 2)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3  # not silent
