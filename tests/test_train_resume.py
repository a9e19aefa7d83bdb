"""Checkpoints: the guide's format, atomic files, and bit-exact resume (N steps straight == N/2 + resume + N/2)."""
from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from engine.dsp import ScalerStats, SpectrogramConfig, samples_for_frames
from training.checkpoint import LAST, CheckpointError, load_checkpoint, save_checkpoint
from training.config import EMAConfig, train_preset
from training.data.audio_folder import AudioFolderDataset
from training.loop import StopRequest, prepare_run_dir, run_training
from training.models import UNetConfig
from training.trainer import Trainer

from train_helpers import write_clips

STEPS = 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("clips"), count=3, seconds=1.0)


def tiny_config(kind: str, steps: int):
    cfg = train_preset(kind, "tiny").with_overrides(steps=steps, checkpoint_every=3, seed=5)
    if kind == "unet":  # EMA averaging already active around the resume point
        cfg = dataclasses.replace(cfg, ema=EMAConfig(start_step=2, decay=0.9, every=2))
    return cfg


def make_trainer(cfg, data_dir) -> Trainer:
    crop = samples_for_frames(cfg.crop_frames, SpectrogramConfig())
    return Trainer(cfg, AudioFolderDataset(data_dir, crop), data_info={"root": str(data_dir)})


def read_losses(path):
    with open(path, newline="") as f:
        return [(int(r["step"]), r["loss"], r["lr"]) for r in csv.DictReader(f)]


def assert_same_state(a: dict, b: dict) -> None:
    for key in ("model", "scaler") + (("ema",) if a["ema"] is not None else ()):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), f"optimizer {index}.{name}"
    assert a["lr_scheduler"] == b["lr_scheduler"] and a["step"] == b["step"]


@pytest.mark.parametrize("kind", ["unet", "vocoder"])
def test_resume_is_bit_exact(tmp_path, data_dir, kind):
    straight_dir = prepare_run_dir(tmp_path / "straight", kind, resume=False)
    straight = make_trainer(tiny_config(kind, STEPS), data_dir)
    run_training(straight, straight_dir, progress=False)

    split_dir = prepare_run_dir(tmp_path / "split", kind, resume=False)
    first = make_trainer(tiny_config(kind, STEPS // 2), data_dir)
    run_training(first, split_dir, progress=False)
    del first
    resumed = make_trainer(tiny_config(kind, STEPS), data_dir)
    resumed.load_checkpoint_payload(load_checkpoint(split_dir / LAST, kind=kind))
    assert resumed.step == STEPS // 2
    run_training(resumed, prepare_run_dir(tmp_path / "split", kind, resume=True), resumed=True, progress=False)

    losses = read_losses(straight_dir / "losses.csv")
    assert [s for s, _, _ in losses] == list(range(1, STEPS + 1))
    assert losses == read_losses(split_dir / "losses.csv")
    assert_same_state(load_checkpoint(straight_dir / LAST), load_checkpoint(split_dir / LAST))


def test_checkpoint_contract_and_files(tmp_path, data_dir):
    run = tmp_path / "run"
    kind_dir = prepare_run_dir(run, "unet", resume=False)
    trainer = make_trainer(tiny_config("unet", 7), data_dir)
    result = run_training(trainer, kind_dir, progress=False)
    assert result.step == 7 and not result.interrupted
    names = sorted(p.name for p in kind_dir.iterdir())
    assert names == ["last.pt", "losses.csv", "step-0000003.pt", "step-0000006.pt"]  # no temporary files left
    data = load_checkpoint(kind_dir / LAST, kind="unet")
    assert data["format"] == "msanii-daw-checkpoint" and data["version"] == 1
    assert data["kind"] == "unet" and data["step"] == 7 and data["preset"] == "tiny"
    assert UNetConfig.from_dict(data["model_config"]).to_dict() == trainer.model.cfg.to_dict()
    assert SpectrogramConfig.from_dict(data["spectrogram"]) == SpectrogramConfig()
    assert data["diffusion"] == {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                                 "prediction_type": "epsilon"}
    assert data["ema"] is not None and data["ema"].keys() == data["model"].keys()
    assert ScalerStats.from_dict(data["scaler_stats"]) == trainer.scaler.stats()
    assert data["train_config"]["steps"] == 7 and data["data"]["root"] == str(data_dir)
    assert load_checkpoint(kind_dir / "step-0000006.pt")["step"] == 6
    with pytest.raises(CheckpointError, match="vocoder"):
        load_checkpoint(kind_dir / LAST, kind="vocoder")
    vocoder = make_trainer(tiny_config("vocoder", 1), data_dir)
    vocoder.train_step()
    payload = vocoder.checkpoint_payload()
    assert payload["ema"] is None and payload["diffusion"] is None


def test_corrupt_and_foreign_checkpoints_are_named(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": 1}, bad)
    with pytest.raises(CheckpointError, match="not a msanii-daw checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint({"kind": "unet"}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_stop_request_saves_and_resume_drops_unsaved_log_rows(tmp_path, data_dir):
    kind_dir = prepare_run_dir(tmp_path / "run", "vocoder", resume=False)
    trainer = make_trainer(tiny_config("vocoder", 100), data_dir)
    stop = StopRequest()
    result = run_training(trainer, kind_dir, progress=False, stop=stop,
                          on_step=lambda step, stats: stop.event.set() if step == 4 else None)
    assert result.interrupted and result.step == 4
    assert load_checkpoint(kind_dir / LAST)["step"] == 4
    # A crash after the log was written but before a save: rows 5-6 exist on disk, the checkpoint is at 4.
    with open(kind_dir / "losses.csv", "a") as f:
        f.write("5,1.0,0.1,1.0,1.0,0.5,0.5\n6,1.0,0.1,1.0,1.0,0.5,0.5\n")
    resumed = make_trainer(tiny_config("vocoder", 6), data_dir)
    resumed.load_checkpoint_payload(load_checkpoint(kind_dir / LAST))
    run_training(resumed, kind_dir, resumed=True, progress=False)
    steps = [s for s, _, _ in read_losses(kind_dir / "losses.csv")]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert read_losses(kind_dir / "losses.csv")[4][1] != "1.0"


def test_run_dir_rules(tmp_path):
    from training.loop import RunDirError

    with pytest.raises(RunDirError, match="nothing to resume"):
        prepare_run_dir(tmp_path / "run", "unet", resume=True)
    kind_dir = prepare_run_dir(tmp_path / "run", "unet", resume=False)
    (kind_dir / "losses.csv").write_text("step\n")
    with pytest.raises(RunDirError, match="already holds a run"):
        prepare_run_dir(tmp_path / "run", "unet", resume=False)
    assert prepare_run_dir(tmp_path / "run", "vocoder", resume=False).is_dir()  # other kind, same run folder


def test_keep_checkpoints_prunes_old_periodic_files(tmp_path, data_dir):
    kind_dir = prepare_run_dir(tmp_path / "run", "vocoder", resume=False)
    trainer = make_trainer(tiny_config("vocoder", 10).with_overrides(checkpoint_every=2), data_dir)
    run_training(trainer, kind_dir, progress=False, keep_checkpoints=2)
    assert sorted(p.name for p in kind_dir.glob("*.pt")) == ["last.pt", "step-0000008.pt", "step-0000010.pt"]
    assert load_checkpoint(kind_dir / LAST)["step"] == 10
