"""A bundle's vocoder in the checkpoint form msanii-export takes: re-export a new U-Net beside a shipped vocoder.

The vocoder graph's initializers are named after the torch state_dict (export/onnx_export.py; `--compact` float16
ones are widened back, training.warm_start), so the weights, the scaler statistics and the provenance of the bundle's
vocoder come back exactly; re-exporting them reproduces the graph to float rounding.
"""
from __future__ import annotations

from pathlib import Path

from engine.bundle import load_bundle
from training.warm_start import initial_tensors


def vocoder_checkpoint_from_bundle(bundle_dir: str | Path) -> dict:
    """{kind, step, preset, model_config, spectrogram, model, ema (None), scaler_stats, data} of the bundle's
    vocoder (BundleError when the bundle is not valid)."""
    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    tensors, _ = initial_tensors(bundle.vocoder_path, "vocoder")
    origin = manifest.get("provenance", {}).get("vocoder", {})
    return {"kind": "vocoder", "step": int(origin.get("step", 0)), "preset": origin.get("preset"),
            "model_config": dict(manifest["vocoder"]["config"]), "spectrogram": bundle.spectrogram.to_dict(),
            "diffusion": None, "model": tensors, "ema": None, "scaler_stats": bundle.vocoder_stats.to_dict(),
            "data": dict(origin.get("data") or {})}
