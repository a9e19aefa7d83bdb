"""fp16 weight storage: half the bytes, float32 compute, outputs within fp16 rounding of the original."""
import numpy as np
import onnxruntime as ort
import torch

from export.compress import compress_file
from training.models import Vocoder, vocoder_preset
from engine.tasks.generate import generate


def test_fp16_storage_halves_size_and_keeps_outputs(tmp_path):
    torch.manual_seed(0)
    model = Vocoder(vocoder_preset("tiny")).eval()
    path = tmp_path / "vocoder.onnx"
    mel = torch.rand(1, 2, 128, 16) * 2 - 1
    torch.onnx.export(model, (mel,), str(path), input_names=["mel"], output_names=["magnitude"],
                      dynamic_axes={"mel": {0: "batch", 3: "frames"}}, opset_version=17, dynamo=False)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"mel": mel.numpy()})[0]
    before, after = compress_file(path)
    assert after < 0.6 * before
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    out = session.run(None, {"mel": mel.numpy()})[0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.log(out), np.log(reference), atol=5e-3)
    longer = torch.rand(2, 2, 128, 40).numpy() * 2 - 1  # dynamic axes survive
    assert session.run(None, {"mel": longer})[0].shape == (2, 2, 1025, 40)


def test_compact_bundle_is_smaller_loads_and_renders(tiny_run_dir, tiny_bundle, tmp_path):
    import json
    import subprocess
    import sys

    from engine.api import Engine

    out = tmp_path / "compact"
    notes = tmp_path / "provenance.json"
    notes.write_text(json.dumps({"training_commands": ["msanii-train unet --preset tiny"]}))
    proc = subprocess.run([sys.executable, "-m", "export.cli", str(tiny_run_dir), str(out), "--compact",
                           "--provenance", str(notes)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"]["compact_weights"] is True
    assert manifest["provenance"]["training_commands"] == ["msanii-train unet --preset tiny"]
    assert manifest["parity"]["unet"]["max_abs_error"] <= manifest["parity"]["tolerance"]["unet_abs"]
    for name in ("unet.onnx", "vocoder.onnx"):
        assert (out / name).stat().st_size < 0.7 * (tiny_bundle / name).stat().st_size
    result = generate(Engine.load(out), 1.0, seed=3, steps=2, gl_iters=2)
    assert result.audio.shape == (2, 44_100) and np.isfinite(result.audio).all()
