"""`msanii-train ... --init-from`: fine-tuning starts from a bundle's ONNX weights (fp16-stored ones widened) or a
checkpoint, all or nothing, as a new run."""
from __future__ import annotations

import pytest
import torch

from export.bundle_writer import ExportOptions, write_bundle
from training.checkpoint import LAST, load_checkpoint
from training.cli import main
from training.models import UNet, Vocoder, unet_preset, vocoder_preset
from training.warm_start import WarmStartError, load_initial_weights

from train_helpers import write_clips


def test_weights_come_back_from_plain_and_compact_bundles(tiny_run_dir, tiny_bundle, tmp_path):
    source = load_checkpoint(tiny_run_dir / "unet" / LAST, "unet")
    compact = write_bundle(source, load_checkpoint(tiny_run_dir / "vocoder" / LAST, "vocoder"), tmp_path / "c",
                           ExportOptions(name="c", command="test", compact=True))
    for bundle, tolerance in ((tiny_bundle, 0.0), (compact, 1e-3)):
        model = UNet(unet_preset("tiny"))
        assert "tensors from" in load_initial_weights(model, bundle, "unet")
        for name, tensor in model.state_dict().items():  # the bundle ships the EMA weights
            expected = source["ema"][name].float()
            assert torch.allclose(tensor, expected, rtol=tolerance, atol=tolerance * expected.abs().max()), name
    vocoder = Vocoder(vocoder_preset("tiny"))
    load_initial_weights(vocoder, tiny_bundle / "vocoder.onnx", "vocoder")
    model = UNet(unet_preset("tiny"))
    load_initial_weights(model, tiny_run_dir / "unet" / LAST, "unet")
    assert all(torch.equal(t, source["ema"][n]) for n, t in model.state_dict().items())


def test_a_model_that_does_not_fit_is_refused_whole(tiny_bundle, tiny_run_dir):
    model = UNet(unet_preset("small"))
    before = {n: t.clone() for n, t in model.state_dict().items()}
    with pytest.raises(WarmStartError, match="does not fit this unet"):
        load_initial_weights(model, tiny_bundle, "unet")
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())
    with pytest.raises(WarmStartError, match="is a unet checkpoint, not a vocoder"):
        load_initial_weights(Vocoder(vocoder_preset("tiny")), tiny_run_dir / "unet" / LAST, "vocoder")
    with pytest.raises(WarmStartError, match="does not exist"):
        load_initial_weights(model, tiny_bundle / "missing", "unet")


def test_cli_fine_tunes_from_a_bundle_as_a_new_run(tmp_path, tiny_bundle, capsys):
    data = write_clips(tmp_path / "clips", count=2, seconds=1.0)
    run = tmp_path / "run"
    args = ["unet", "--data", str(data), "--preset", "tiny", "--out", str(run), "--steps", "1", "--no-progress",
            "--init-from", str(tiny_bundle)]
    assert main(args) == 0
    assert "initial weights: " in capsys.readouterr().err
    checkpoint = load_checkpoint(run / "unet" / LAST, "unet")
    assert checkpoint["step"] == 1 and "tiny" in checkpoint["data"]["init_from"]
    assert main(["unet", "--out", str(run), "--resume", "--steps", "2", "--init-from", str(tiny_bundle)]) == 2
    assert "cannot be combined with --resume" in capsys.readouterr().err
    other = [*args[:4], "small", "--out", str(tmp_path / "other"), *args[7:]]
    assert main(other) == 2  # a preset that does not fit: one clear line
    err = capsys.readouterr().err
    assert "does not fit this unet" in err and "Traceback" not in err
