"""Export: checkpoints in the trainer's format -> bundle (ONNX + manifest) that the engine's reader accepts."""
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from engine.bundle import load_bundle, sha256_file
from export.cli import main as export_main
from training.checkpoint import LAST, load_checkpoint
from training.models import UNet, UNetConfig


def test_manifest_is_complete_and_parity_recorded(tiny_bundle, tiny_run_dir):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["format"] == "msanii-daw-bundle" and manifest["version"] == "1.0"
    assert manifest["sample_rate"] == 44100 and manifest["channels"] == 2
    unet_ckpt = load_checkpoint(tiny_run_dir / "unet" / LAST)
    vocoder_ckpt = load_checkpoint(tiny_run_dir / "vocoder" / LAST)
    assert manifest["scalers"]["unet"] == unet_ckpt["scaler_stats"]
    assert manifest["scalers"]["vocoder"] == vocoder_ckpt["scaler_stats"]
    assert manifest["scalers"]["unet"] != manifest["scalers"]["vocoder"]  # two separately fitted scalers
    assert manifest["diffusion"] == unet_ckpt["diffusion"]
    assert manifest["spectrogram"]["hop_length"] == 1024 and manifest["unet"]["frame_multiple"] == 2
    for name in ("unet.onnx", "vocoder.onnx"):
        entry = manifest["files"][name]
        assert entry["sha256"] == sha256_file(tiny_bundle / name)
        assert entry["bytes"] == (tiny_bundle / name).stat().st_size
    parity = manifest["parity"]
    assert len(parity["unet"]["frames"]) == 2 and parity["unet"]["frames"][0] != parity["unet"]["frames"][1]
    assert 0 <= parity["unet"]["max_abs_error"] < 1e-4
    assert 0 <= parity["vocoder"]["max_rel_error"] < 1e-4
    prov = manifest["provenance"]
    assert prov["unet"]["step"] == 200 and prov["unet"]["ema"] is True
    assert prov["unet"]["data"]["description"] and prov["date"] and prov["export_command"]
    assert manifest["defaults"]["sampler"] in ("ddim", "dpmpp", "sde")
    load_bundle(tiny_bundle)


def test_graphs_have_dynamic_batch_and_time_and_use_ema_weights(tiny_bundle, tiny_run_dir):
    ckpt = load_checkpoint(tiny_run_dir / "unet" / LAST)
    session = ort.InferenceSession(str(tiny_bundle / "unet.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 2, 128, 22)
    t = torch.tensor([0.0, 412.5, 999.0])
    out = session.run(None, {"x": x.numpy(), "t": t.numpy()})[0]
    assert out.shape == (3, 2, 128, 22)
    model = UNet(UNetConfig.from_dict(ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["ema"])
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x, t).numpy(), atol=1e-4)
        model.load_state_dict(ckpt["model"])
        assert np.abs(out - model(x, t).numpy()).max() > 1e-3  # it is not the raw weights
    vocoder = ort.InferenceSession(str(tiny_bundle / "vocoder.onnx"), providers=["CPUExecutionProvider"])
    mag = vocoder.run(None, {"mel": np.random.rand(2, 2, 128, 9).astype(np.float32)})[0]
    assert mag.shape == (2, 2, 1025, 9) and (mag > 0).all()


def test_cli_no_ema_fp16_and_refuses_existing_out(tiny_run_dir, tmp_path):
    out = tmp_path / "b"
    assert export_main([str(tiny_run_dir), str(out), "--no-ema", "--fp16"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["unet"]["ema"] is False
    assert {"unet.fp16.onnx", "vocoder.fp16.onnx"} <= set(manifest["files"])
    assert manifest["parity"]["fp16"]["unet"]["max_abs_error"] < 0.05
    session = ort.InferenceSession(str(out / "unet.fp16.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"  # fp16 inside, float32 at the edges
    before = sha256_file(out / "unet.onnx")
    assert export_main([str(tiny_run_dir), str(out)]) == 2  # exists, no --overwrite
    assert sha256_file(out / "unet.onnx") == before
    assert export_main([str(tiny_run_dir), str(out), "--overwrite", "--steps", "12", "--gl-iters", "96",
                        "--sampler", "sde"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["unet"]["ema"] is True
    assert manifest["defaults"]["steps"] == 12 and manifest["defaults"]["gl_iters"] == 96
    assert load_bundle(out).defaults.gl_iters == 96 and load_bundle(out).defaults.sampler == "sde"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left behind


def test_cli_errors_are_one_line(tiny_run_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "export.cli", str(tmp_path / "nope"), str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "run directory not found" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "export.cli", "-", str(tmp_path / "o"),
                           "--unet", str(tiny_run_dir / "vocoder" / LAST),
                           "--vocoder", str(tiny_run_dir / "vocoder" / LAST)], capture_output=True, text=True)
    assert proc.returncode == 2 and "expected unet" in proc.stderr
    assert not (tmp_path / "o").exists()
    assert export_main([str(tiny_run_dir), str(tmp_path / "o"), "--gl-iters", "-1"]) == 2
    assert not (tmp_path / "o").exists()
