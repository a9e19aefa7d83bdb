"""The data prior of an eps U-Net (engine.prior): manifest field, the x0 weighing, measuring and adding it."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from diffusers import DDPMScheduler

from engine.api import Engine, render
from engine.bundle import BundleError, load_bundle
from engine.dsp import SpectrogramConfig, log_mel
from engine.dsp.scaler import normalise
from engine.prior import DataPrior, PriorWeightedDenoiser, prior_weighted_eps
from export.cli import main as export_main
from export.data_prior import add_prior_to_bundle, main as prior_main, measure_prior
from training.diffusion import noise_batch, training_target

from conftest import _music_like

ABAR = DDPMScheduler(beta_schedule="squaredcos_cap_v2").alphas_cumprod


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prior_audio")
    g = torch.Generator().manual_seed(3)
    for i in range(2):
        sf.write(folder / f"clip{i}.wav", _music_like(1.5, SpectrogramConfig(), g).T.numpy(), 44100)
    return folder


def _prior(bins=128, error=5e-4):
    mean = tuple(float(v) for v in np.linspace(0.4, -0.6, bins))
    return DataPrior(mean, tuple([0.04] * bins), error)


@pytest.mark.parametrize("data, message", [
    ({"mean": [0.1], "var": [0.1, 0.2]}, "one length"),
    ({"mean": [0.1], "var": [-0.1]}, "positive"),
    ({"mean": [0.1], "var": [0.1], "error": 0}, "error must be"),
    ({"mean": [True], "var": [0.1]}, "list of numbers"),
    ({"mean": [0.1], "var": [0.1], "gain": 2}, "unknown field"),
    ([1, 2], "JSON object"),
])
def test_malformed_priors_are_refused_with_the_problem_named(data, message):
    with pytest.raises(ValueError, match=message):
        DataPrior.from_dict(data)


def test_x0_is_the_prior_mean_near_pure_noise_and_the_model_s_at_low_noise():
    prior = _prior()
    mean = torch.tensor(prior.mean).reshape(1, 1, -1, 1)
    x = torch.randn(1, 2, 128, 16, generator=torch.Generator().manual_seed(0))
    eps = x + 0.05 * torch.randn(x.shape)  # an eps model's typical error near t = T: garbage x0 of size 1e3
    for t, within in ((999, 0.02), (990, 0.3)):
        a = ABAR[t]
        raw = (x - (1 - a).sqrt() * eps) / a.sqrt()
        new = prior_weighted_eps(eps, x, a.reshape(1), prior)
        x0 = (x - (1 - a).sqrt() * new) / a.sqrt()
        assert (x0 - mean).abs().max() < within < (raw - mean).abs().max() / 10, t
    for t in (0, 50, 200):  # where the model resolves x0, it is (almost) left alone
        new = prior_weighted_eps(eps, x, ABAR[t].reshape(1), prior)
        assert (new - eps).abs().max() < 0.02 * (1 + t / 100), t


def test_manifest_prior_is_checked_and_weighs_the_engine_s_denoiser(tiny_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["diffusion"]["prior"] = {**_prior(bins=64).to_dict()}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="64 bins"):
        load_bundle(bundle)
    manifest["diffusion"]["prior"] = _prior().to_dict()
    manifest["diffusion"]["prediction_type"] = "v_prediction"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="only for epsilon"):
        load_bundle(bundle)
    manifest["diffusion"]["prediction_type"] = "epsilon"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert load_bundle(bundle).diffusion.prior == DataPrior.from_dict(_prior().to_dict())

    weighted, bare = Engine.load(bundle, threads=1), Engine.load(bundle, threads=1, use_prior=False)
    assert isinstance(weighted.denoiser, PriorWeightedDenoiser) and weighted.denoiser.device == "cpu"
    assert not isinstance(bare.denoiser, PriorWeightedDenoiser)
    a, b = (render(e, "generate", seconds=0.5, seed=1, steps=4).audio for e in (weighted, bare))
    assert np.isfinite(a).all() and a.shape == b.shape and np.abs(a - b).max() > 1e-3


def test_measured_prior_is_the_per_bin_mean_and_variance_in_model_space(tiny_bundle, audio_dir):
    bundle = load_bundle(tiny_bundle)
    prior = measure_prior(audio_dir, bundle.spectrogram, bundle.unet_stats)
    frames = []
    for path in sorted(audio_dir.glob("*.wav")):
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
        x = normalise(log_mel(torch.from_numpy(audio.T.copy()), bundle.spectrogram), bundle.unet_stats)
        frames.append(x.transpose(0, 1).reshape(128, -1))
    x = torch.cat(frames, 1).double()
    np.testing.assert_allclose(prior.mean, x.mean(1).numpy(), atol=1e-5)
    np.testing.assert_allclose(prior.var, x.var(1, unbiased=False).clamp_min(1e-6).numpy(), rtol=1e-4, atol=1e-7)


def test_adding_a_prior_to_a_bundle_keeps_an_existing_one_unless_asked(tiny_bundle, audio_dir, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    assert prior_main([str(bundle), "--data", str(audio_dir)]) == 0
    first = load_bundle(bundle).diffusion.prior
    assert first is not None and len(first.mean) == 128
    assert prior_main([str(bundle), "--data", str(audio_dir), "--error", "1e-3"]) == 2
    assert "already has a data prior" in capsys.readouterr().err
    assert load_bundle(bundle).diffusion.prior == first
    assert add_prior_to_bundle(bundle, audio_dir, error=1e-3, overwrite=True).error == 1e-3
    assert not list(bundle.glob(".manifest-*"))  # no temporary file left behind
    assert prior_main([str(bundle), "--data", str(tmp_path / "nowhere"), "--overwrite"]) == 2
    assert "no audio files" in capsys.readouterr().err
    assert load_bundle(bundle).diffusion.prior.error == 1e-3


def test_export_measures_the_prior_when_given_data(tiny_run_dir, audio_dir, tmp_path, capsys):
    out = tmp_path / "with-prior"
    assert export_main([str(tiny_run_dir), str(out), "--prior-data", str(audio_dir)]) == 0
    prior = load_bundle(out).diffusion.prior
    assert prior is not None and prior.error == 5e-4
    assert export_main([str(tiny_run_dir), str(tmp_path / "x"), "--prior-data", str(tmp_path)]) == 2
    assert "no audio files" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_v_prediction_target_is_the_velocity():
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    x0 = torch.randn(3, 2, 8, 4)
    x_t, noise, t = noise_batch(x0, scheduler, torch.Generator().manual_seed(0))
    v = training_target(scheduler, x0, noise, t)
    a = ABAR[t].sqrt().reshape(-1, 1, 1, 1)
    s = (1 - ABAR[t]).sqrt().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(v, a * noise - s * x0)
    torch.testing.assert_close(a * x_t - s * v, x0, atol=1e-5, rtol=1e-5)  # x0 recovered from v
    eps_scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    assert training_target(eps_scheduler, x0, noise, t) is noise


def test_musicality_renders_the_bare_model_and_each_prior_error_beside_the_bundle(tiny_bundle, audio_dir, tmp_path,
                                                                                  capsys):
    from bench import musicality

    bundle, real = tmp_path / "b", tmp_path / "real"
    shutil.copytree(tiny_bundle, bundle)
    add_prior_to_bundle(bundle, audio_dir)
    real.mkdir()
    g = torch.Generator().manual_seed(4)
    for i in range(2):  # long enough for a few Frechet windows per clip
        sf.write(real / f"real{i}.wav", _music_like(6.0, SpectrogramConfig(), g).T.numpy(), 44100)
    assert musicality.main(["--real", str(real), "--bundle", str(bundle), "--clips", "2", "--seconds", "5",
                            "--seeds", "0", "--bare", "--prior-error", "1e-3", "--sampling", "ddim:3"]) == 0
    table = capsys.readouterr().out.splitlines()
    header = table[0]
    assert "b generated" in header and "b bare" in header and "b prior error 0.001" in header
    assert "b ddim 3" in header
    assert any(line.startswith("| level_db |") for line in table)
