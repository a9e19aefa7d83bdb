"""Training presets, parameter counts, losses, the noise schedule and EMA."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.dsp import SpectrogramConfig, mel_frames_for, samples_for_frames
from training.config import TrainConfig, train_preset
from training.diffusion import ddim_scheduler, noise_batch, train_scheduler
from training.ema import EMA
from training.config import EMAConfig
from training.losses import diffusion_loss, log_magnitude_loss, spectral_convergence_loss, vocoder_loss
from training.models import UNet, Vocoder, unet_preset, vocoder_preset


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_parameter_counts():
    unet = n_params(UNet(unet_preset("paper")))
    assert abs(unet - 49_878_016) <= 0.01 * 49_878_016, unet
    assert n_params(Vocoder(vocoder_preset("paper"))) == 1_412_097


def test_small_preset_size_and_crop():
    small = UNet(unet_preset("small"))
    count = n_params(small)
    assert 5_000_000 < count < 20_000_000, count  # documented: 14.6 M, width kept at 256 (Appendix C)
    assert small.cfg.width >= 2 * small.cfg.n_mels
    cfg = train_preset("unet", "small")
    assert (cfg.crop_frames, cfg.batch_size) == (256, 4)
    assert cfg.crop_frames % small.cfg.frame_multiple == 0
    assert samples_for_frames(cfg.crop_frames, SpectrogramConfig()) == 255 * 1024
    vocoder = train_preset("vocoder", "small")
    assert (vocoder.crop_frames, vocoder.batch_size) == (64, 8)


def test_paper_preset_matches_tables():
    spec = SpectrogramConfig()
    unet, vocoder = train_preset("unet", "paper"), train_preset("vocoder", "paper")
    assert samples_for_frames(unet.crop_frames, spec) == 8_387_584 and unet.batch_size == 4
    assert samples_for_frames(vocoder.crop_frames, spec) == 523_264 and vocoder.batch_size == 8
    assert mel_frames_for(8_387_584, spec) == 8192 and 8192 % unet_preset("paper").frame_multiple == 0
    assert (unet.steps, vocoder.steps) == (110_000, 40_000)
    for cfg in (unet, vocoder):
        assert cfg.optim.lr == 2e-4 and cfg.optim.betas == (0.5, 0.999)
        assert cfg.optim.warmup_steps == 500 and math.isclose(cfg.optim.warmup_start_factor, 1 / 3)
        assert cfg.optim.grad_clip == 1.0
    assert (unet.ema.start_step, unet.ema.decay, unet.ema.every) == (2000, 0.995, 10)
    assert vocoder.ema is None and vocoder.diffusion is None
    assert unet.diffusion.to_dict() == {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                                        "prediction_type": "epsilon"}


def test_train_config_round_trip_and_validation():
    cfg = train_preset("unet", "small").with_overrides(steps=7, seed=3, batch_size=None)
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.steps == 7 and again.batch_size == 4
    with pytest.raises(ValueError, match="preset"):
        train_preset("unet", "huge")
    with pytest.raises(ValueError, match="steps"):
        cfg.with_overrides(steps=0)
    with pytest.raises(ValueError, match="kind"):
        train_preset("gan", "small")


def test_diffusion_loss_is_mse():
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 0.0])
    assert float(diffusion_loss(a, b)) == pytest.approx((0 + 4 + 9) / 3)


def test_vocoder_losses_match_paper_equations():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 2, 1025, 5, generator=gen) + 0.1
    predicted = target * 1.5
    # eq. 1: ||S - S_hat||_F / ||S||_F = 0.5 for S_hat = 1.5 S
    assert float(spectral_convergence_loss(predicted, target)) == pytest.approx(0.5, rel=1e-5)
    expected = np.mean(np.abs(np.log(target.numpy() + 1e-5) - np.log(predicted.numpy() + 1e-5)))
    assert float(log_magnitude_loss(predicted, target)) == pytest.approx(expected, rel=1e-5)
    total, parts = vocoder_loss(predicted, target)
    assert float(total) == pytest.approx(parts["sc"] + parts["log_mag"], rel=1e-6)
    assert float(vocoder_loss(target, target)[0]) == 0.0
    weighted, parts4 = vocoder_loss(predicted, target, sc_weight=4.0)
    assert float(weighted) == pytest.approx(4 * parts4["sc"] + parts4["log_mag"], rel=1e-6)


def test_cosine_schedule_and_noising():
    sched = train_scheduler()
    assert sched.config.num_train_timesteps == 1000 and sched.config.beta_schedule == "squaredcos_cap_v2"
    # Glide cosine schedule: abar(t) ~ cos^2(((t/T) + s)/(1 + s) * pi/2) / cos^2(s/(1+s) * pi/2), s = 0.008
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    assert float(sched.alphas_cumprod[499]) == pytest.approx(f(500) / f(0), rel=1e-3)
    assert ddim_scheduler().config.beta_schedule == "squaredcos_cap_v2"
    x0 = torch.ones(3, 2, 128, 8)
    x_t, noise, t = noise_batch(x0, sched, torch.Generator().manual_seed(1))
    assert t.dtype == torch.long and t.shape == (3,) and int(t.min()) >= 0 and int(t.max()) < 1000
    abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)
    again = noise_batch(x0, sched, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], x_t)


def test_ema_copies_then_averages():
    model = torch.nn.Linear(3, 1, bias=False)
    ema = EMA(model, EMAConfig(start_step=2, decay=0.9, every=2))
    for step, value in ((1, 1.0), (2, 2.0)):  # up to start_step: exact copies
        model.weight.data.fill_(value)
        ema.update(model, step)
        assert torch.equal(ema.model.weight, model.weight)
    model.weight.data.fill_(12.0)
    ema.update(model, 3)  # not a multiple of `every`: unchanged
    assert torch.allclose(ema.model.weight, torch.full((1, 3), 2.0))
    ema.update(model, 4)  # 0.9 * 2 + 0.1 * 12
    assert torch.allclose(ema.model.weight, torch.full((1, 3), 3.0))
    assert not ema.model.weight.requires_grad
