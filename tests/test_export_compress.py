"""fp16 weight storage: half the bytes, float32 compute, outputs within fp16 rounding of the original."""
import numpy as np
import onnxruntime as ort
import torch

from export.compress import compress_file
from training.models import Vocoder, vocoder_preset


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
