"""A v-prediction U-Net end to end: trained target, export, every sampler and RePaint in the engine."""
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import _music_like, make_tiny_checkpoint
from engine.api import Engine, render
from engine.bundle import load_bundle
from engine.dsp import SpectrogramConfig
from export.cli import main as export_main
from training.checkpoint import LAST, save_checkpoint


@pytest.fixture(scope="module")
def v_bundle(tmp_path_factory):
    run = tmp_path_factory.mktemp("v_run")
    unet = make_tiny_checkpoint("unet", seed=5)
    unet["diffusion"]["prediction_type"] = "v_prediction"
    for kind, ckpt in (("unet", unet), ("vocoder", make_tiny_checkpoint("vocoder", seed=6))):
        (run / kind).mkdir()
        save_checkpoint(ckpt, run / kind / LAST)
    assert export_main([str(run), str(run / "bundle")]) == 0
    assert export_main([str(run), str(run / "refused"), "--prior-data", str(run)]) == 2  # a v model needs none
    return run / "bundle"


def test_v_bundle_generates_with_both_samplers_and_inpaints_with_repaint(v_bundle, tmp_path):
    assert load_bundle(v_bundle).diffusion.prediction_type == "v_prediction"
    engine = Engine.load(v_bundle, threads=1)
    for sampler in ("dpmpp", "ddim"):
        audio = render(engine, "generate", seconds=0.5, seed=0, steps=4, sampler=sampler).audio
        assert audio.shape[0] == 2 and np.isfinite(audio).all() and np.abs(audio).max() > 0
    source = tmp_path / "source.wav"
    sf.write(source, _music_like(2.0, SpectrogramConfig(), torch.Generator().manual_seed(1)).T.numpy(),
             44100)
    result = render(engine, "inpaint", source=str(source), regions=["0.5-1.2"], steps=4, method="repaint", jumps=2)
    assert result.audio.shape[-1] == 2 * 44100 and np.isfinite(result.audio).all()
