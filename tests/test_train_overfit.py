"""A tiny U-Net and a tiny vocoder overfit one clip; the learned scaler's train/eval behaviour in training."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.dsp import log_mel, samples_for_frames, SpectrogramConfig
from training.config import train_preset
from training.data.audio_folder import AudioFolderDataset
from training.trainer import Trainer

from train_helpers import write_clips


def one_clip_trainer(tmp_path, kind: str, lr: float, batch_size: int) -> Trainer:
    """Trainer on a folder holding one clip exactly one crop long, so every crop is the whole clip. The clip
    has no noise floor: the exact magnitudes of white noise in 1025 bins cannot be predicted from 128 mel bands,
    which would put a floor under the vocoder's log-magnitude loss."""
    cfg = train_preset(kind, "tiny")
    crop = samples_for_frames(cfg.crop_frames, SpectrogramConfig())
    data = write_clips(tmp_path / "one", count=1, samples=crop, noise=0.0)
    cfg = dataclasses.replace(cfg, batch_size=batch_size,
                              optim=dataclasses.replace(cfg.optim, lr=lr, warmup_steps=1))
    dataset = AudioFolderDataset(data, crop)
    return Trainer(cfg, dataset)


@pytest.fixture
def one_thread():
    """One torch thread: the loss curve is then the same whatever the machine's core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_vocoder_overfits_one_clip(tmp_path, one_thread):
    # The floor (~0.35) is the 16-bit quantisation noise between the partials: its exact log-magnitudes are not
    # predictable from the mel input. 1000 steps reach ~19x here.
    trainer = one_clip_trainer(tmp_path, "vocoder", lr=2e-3, batch_size=1)
    losses = [trainer.train_step()["loss"] for _ in range(1000)]
    first, last = losses[0], float(np.mean(losses[-10:]))
    assert first / last >= 10, (first, last)


def test_tiny_unet_overfits_one_clip(tmp_path, one_thread):
    # One clip with one noise draw and timestep (batch_step=0 repeats step 0's batch). Batch 1: the tiny
    # U-Net is 32 wide, narrower than the 128 mel bins, so it can only emit noise in a 32-dim subspace per token
    # (Appendix C) - enough to memorise one example, not a batch of fresh noise.
    trainer = one_clip_trainer(tmp_path, "unet", lr=3e-3, batch_size=1)
    losses = [trainer.train_step(batch_step=0)["loss"] for _ in range(300)]
    first, last = losses[0], float(np.mean(losses[-10:]))
    assert first / last >= 10, (first, last)
    assert trainer.step == 300


def test_scaler_updates_in_training_and_is_frozen_in_eval(tmp_path):
    cfg = dataclasses.replace(train_preset("unet", "tiny"), scaler="batch")  # Appendix A's mode
    crop = samples_for_frames(cfg.crop_frames, SpectrogramConfig())
    dataset = AudioFolderDataset(write_clips(tmp_path / "clips", count=2, seconds=1.0), crop)
    trainer = Trainer(cfg, dataset)
    scaler = trainer.scaler
    trainer.train_step()
    first = {k: v.clone() for k, v in scaler.state_dict().items()}
    assert bool(scaler.fitted)
    trainer.train_step()
    trainer.train_step()
    # Two more updates: momentum decayed x0.99 each, running statistics moved.
    assert float(scaler.momentum) == np.float64(first["momentum"]) * 0.99 * 0.99
    assert float(scaler.running_mean) != float(first["running_mean"])

    scaler.eval()
    frozen = {k: v.clone() for k, v in scaler.state_dict().items()}
    audio, _ = trainer.draw_batch(99)
    mel = log_mel(audio, trainer.spectrogram)
    out1, out2 = scaler(mel), scaler(mel * 1.5 + 2)
    out3 = scaler(mel)
    assert torch.equal(out1, out3)  # deterministic, independent of what it saw in between
    for k, v in scaler.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    assert float(out1.min()) >= -1 and float(out1.max()) <= 1 and not torch.equal(out1, out2)
