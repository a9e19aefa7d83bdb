"""`msanii-train average`: the mean of a real run's checkpoints, exported and rendered; bad input is named."""
from __future__ import annotations

import pytest
import torch

from train_helpers import write_clips
from training.checkpoint import load_checkpoint
from training.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = write_clips(tmp_path_factory.mktemp("clips"), count=2, seconds=1.0)
    out = tmp_path_factory.mktemp("avg") / "run"
    assert main(["unet", "--data", str(data), "--preset", "tiny", "--out", str(out), "--steps", "6",
                 "--batch-size", "2", "--crop-frames", "16", "--checkpoint-every", "2", "--ema-start", "0",
                 "--no-progress", "--threads", "1"]) == 0
    return out / "unet"


def test_average_is_the_mean_of_the_ema_weights_and_exports(run, tmp_path, capsys):
    from engine.api import Engine, render
    from export.cli import main as export_main

    paths = [run / f"step-000000{s}.pt" for s in (2, 4, 6)]
    out = tmp_path / "average.pt"
    assert main(["average", "--out", str(out), *map(str, reversed(paths))]) == 0
    assert "3 checkpoints averaged (steps 2, 4, 6)" in capsys.readouterr().err
    averaged = load_checkpoint(out, "unet")
    states = [load_checkpoint(p, "unet")["ema"] for p in paths]
    name = next(n for n, t in states[0].items() if t.is_floating_point() and t.numel() > 1)
    assert not torch.equal(states[0][name], states[2][name])  # the weights moved between checkpoints
    torch.testing.assert_close(averaged["ema"][name], (states[0][name] + states[1][name] + states[2][name]) / 3)
    assert averaged["step"] == 6 and averaged["averaged"]["steps"] == [2, 4, 6]
    assert averaged["optimizer"] == {}  # an export source, not a run to resume
    raw = tmp_path / "raw.pt"
    assert main(["average", "--out", str(raw), "--weights", "model", *map(str, paths[:2])]) == 0
    models = [load_checkpoint(p, "unet")["model"] for p in paths[:2]]
    torch.testing.assert_close(load_checkpoint(raw, "unet")["ema"][name], (models[0][name] + models[1][name]) / 2)

    bundle = tmp_path / "bundle"
    vocoder = run.parent.parent / "voc"
    assert main(["vocoder", "--data", str(load_checkpoint(paths[0])["data"]["root"]), "--preset", "tiny",
                 "--out", str(vocoder), "--steps", "1", "--no-progress", "--threads", "1"]) == 0
    assert export_main(["-", str(bundle), "--unet", str(out), "--vocoder", str(vocoder / "vocoder" / "last.pt")]) == 0
    result = render(Engine.load(bundle), "generate", seconds=0.5, seed=0, steps=2, gl_iters=1)
    assert result.audio.shape[-1] == 22_050


def test_bad_averages_are_one_line_errors_and_nothing_is_overwritten(run, tmp_path, capsys, tmp_path_factory):
    out = tmp_path / "average.pt"
    out.write_bytes(b"keep me")
    two = [str(run / "step-0000002.pt"), str(run / "step-0000004.pt")]
    cases = [
        ([*two], "exists; pass --overwrite"),
        (["--overwrite", two[0]], "at least two checkpoints"),
        (["--overwrite", two[0], two[0]], "named twice"),
        (["--overwrite", two[0], str(tmp_path / "nope.pt")], "no checkpoint at"),
    ]
    for args, message in cases:
        assert main(["average", "--out", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("msanii-train: error:") and message in err, err
    assert out.read_bytes() == b"keep me"
    other = tmp_path_factory.mktemp("other") / "run"
    data = write_clips(tmp_path / "clips", count=2, seconds=1.0)
    assert main(["unet", "--data", str(data), "--preset", "tiny", "--out", str(other), "--steps", "1",
                 "--batch-size", "2", "--crop-frames", "32", "--no-progress", "--threads", "1"]) == 0
    ckpt = load_checkpoint(other / "unet" / "last.pt")
    ckpt["model_config"] = {**ckpt["model_config"], "base_channels": 999}
    torch.save(ckpt, tmp_path / "foreign.pt")
    assert main(["average", "--out", str(tmp_path / "x.pt"), two[0], str(tmp_path / "foreign.pt")]) == 2
    assert "differs" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
