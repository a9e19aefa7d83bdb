"""Bundle validation: every defect gives one BundleError naming the problem."""
import json
import shutil

import pytest

from engine.api import Engine
from engine.bundle import BundleError, load_bundle


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "bundle")


def _edit(bundle, change):
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_valid_bundle_loads(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    assert bundle.sample_rate == 44100 and bundle.channels == 2 and bundle.frame_multiple == 2
    assert bundle.unet_stats != bundle.vocoder_stats
    assert bundle.diffusion.beta_schedule == "squaredcos_cap_v2"
    assert bundle.unet_path.name == "unet.onnx"


def test_missing_file(bundle_copy):
    (bundle_copy / "vocoder.onnx").unlink()
    with pytest.raises(BundleError, match=r"missing: vocoder\.onnx"):
        load_bundle(bundle_copy)


def test_checksum_mismatch_same_size(bundle_copy):
    path = bundle_copy / "unet.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"unet\.onnx fails its sha256 checksum"):
        load_bundle(bundle_copy)
    with pytest.raises(BundleError):  # the engine refuses it too
        Engine.load(bundle_copy)


def test_truncated_file(bundle_copy):
    path = bundle_copy / "unet.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BundleError, match=r"unet\.onnx has \d+ bytes, manifest says"):
        load_bundle(bundle_copy)


def test_unknown_major_version(bundle_copy):
    _edit(bundle_copy, lambda m: m.update(version="2.0"))
    with pytest.raises(BundleError, match=r"version 2\.0 is not supported"):
        load_bundle(bundle_copy)


def test_newer_minor_version_is_accepted(bundle_copy):
    _edit(bundle_copy, lambda m: m.update(version="1.7"))
    assert load_bundle(bundle_copy).name == "tiny-test"


@pytest.mark.parametrize("change, message", [
    (lambda m: m["scalers"]["unet"].update(max="high"), r"'scalers\.unet' is malformed"),
    (lambda m: m["scalers"]["vocoder"].update(min=5.0, max=1.0), r"'scalers\.vocoder' is malformed"),
    (lambda m: m.update(sample_rate="44100"), r"'sample_rate' must be an integer"),
    (lambda m: m.pop("diffusion"), r"missing field 'diffusion'"),
    (lambda m: m["diffusion"].update(beta_schedule="cosine2"), r"'diffusion\.beta_schedule' must be one of"),
    (lambda m: m["unet"].update(frame_multiple=0), r"'unet\.frame_multiple' must be an integer >= 1"),
    (lambda m: m["defaults"].update(sampler="euler"), r"'defaults\.sampler' must be one of"),
    (lambda m: m["spectrogram"].update(hop=512), r"'spectrogram' is malformed"),
    (lambda m: m["spectrogram"].update(sample_rate=48000), r"'spectrogram\.sample_rate' \(48000\) differs"),
    (lambda m: m["files"]["unet.onnx"].update(sha256="abc"), r"'files\.unet\.onnx\.sha256' must be 64"),
    (lambda m: m["files"].pop("vocoder.onnx"), r"'files' does not list 'vocoder\.onnx'"),
    (lambda m: m["files"].update({"../x.onnx": m["files"]["unet.onnx"]}), r"unsafe file name"),
    (lambda m: m.update(format="something-else"), r"not a msanii-daw bundle"),
])
def test_malformed_fields(bundle_copy, change, message):
    _edit(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


def test_not_json_and_not_a_bundle(bundle_copy, tmp_path):
    with pytest.raises(BundleError, match="bundle not found"):
        load_bundle(tmp_path / "nothing")
    with pytest.raises(BundleError, match="has no manifest.json"):
        load_bundle(tmp_path)
    (bundle_copy / "manifest.json").write_text("{ not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)


def test_device_choice(tiny_bundle):
    import torch

    from engine.backends.onnx import BackendError
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        Engine.load(tiny_bundle, device="gpu")
    engine = Engine.load(tiny_bundle, device="auto", threads=1)
    assert engine.device == ("cuda" if torch.cuda.is_available() else "cpu") and engine.threads == 1
    assert engine.denoiser.session.get_session_options().intra_op_num_threads == 1
    if not torch.cuda.is_available():  # asking for a GPU that is not there is an error, not a silent CPU run
        with pytest.raises(BackendError, match="cuda was requested but onnxruntime could not use it"):
            Engine.load(tiny_bundle, device="cuda")


def test_zipped_bundle(tiny_bundle, tmp_path):
    import zipfile
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in tiny_bundle.iterdir():
            zf.write(f, f"tiny/{f.name}")  # a folder inside the zip, as `zip -r tiny.zip tiny` makes
    bundle = load_bundle(archive)
    assert bundle.name == "tiny-test" and bundle.unet_path.is_file()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.onnx", b"x")
    with pytest.raises(BundleError, match="unsafe or nested member"):
        load_bundle(bad)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a readable zip"):
        load_bundle(tmp_path / "junk.zip")
