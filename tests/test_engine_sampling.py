"""Sampler loops over diffusers schedulers, checked with an exact (oracle) noise predictor for a known x0."""
import pytest
import torch

from engine.sampling import make_scheduler, noised_start, sample, start_index_for


def _oracle(x0, scheduler):
    """eps(x_t, t) for data that is exactly x0: (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    abar = scheduler.alphas_cumprod

    def denoise(x, t):
        assert t.dtype == torch.float32 and t.shape == (x.shape[0],)  # float timesteps [B]
        a = abar[t.long()].reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return denoise


@pytest.mark.parametrize("sampler, steps, order", [("ddim", 20, 2), ("dpmpp", 8, 2), ("dpmpp", 8, 1),
                                                   ("dpmpp", 8, 3)])
def test_recovers_known_sample_from_noise(sampler, steps, order):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 2, 16, 8, generator=gen) * 1.6 - 0.8
    scheduler = make_scheduler(sampler, order=order)
    if sampler == "dpmpp":
        assert scheduler.config.solver_order == order
    seen = []
    out = sample(_oracle(x0, scheduler), torch.randn(x0.shape, generator=gen), scheduler, steps,
                 callback=seen.append, disable=True)
    assert [s["i"] for s in seen] == list(range(steps)) and seen[0]["t"] > seen[-1]["t"]
    assert torch.allclose(out, x0, atol=2e-3)


def test_partial_start_from_strength():
    gen = torch.Generator().manual_seed(1)
    x0 = torch.rand(1, 2, 16, 8, generator=gen) * 1.6 - 0.8
    scheduler = make_scheduler("dpmpp")
    assert start_index_for(20, 1.0) == 0 and start_index_for(20, 0.25) == 15 and start_index_for(20, 0.01) == 19
    x_t, start = noised_start(x0, scheduler, 20, 0.25, generator=gen)
    assert start == 15
    assert (x_t - x0).abs().mean() < 0.5  # lightly noised: still near the start
    seen = []
    out = sample(_oracle(x0, scheduler), x_t, scheduler, 20, start_index=start, callback=seen.append, disable=True)
    assert len(seen) == 5
    assert torch.allclose(out, x0, atol=2e-3)
    with pytest.raises(ValueError, match="strength"):
        start_index_for(20, 0.0)


def test_same_seed_same_result_and_unknown_sampler():
    def denoise(x, t):
        return torch.tanh(x) * (t[:, None, None, None] / 1000)
    runs = [sample(denoise, torch.randn(1, 2, 8, 4, generator=torch.Generator().manual_seed(3)),
                   make_scheduler("dpmpp"), 6, disable=True) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="unknown sampler"):
        make_scheduler("euler")


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_clip_prediction_clips_implied_x0_only(kind):
    from engine.sampling import clip_prediction
    scheduler = make_scheduler("ddim", prediction_type=kind)
    gen = torch.Generator().manual_seed(2)
    t = torch.tensor([300.0, 800.0])
    a = scheduler.alphas_cumprod[t.long()].reshape(-1, 1, 1, 1).float()
    eps = torch.randn(2, 1, 4, 4, generator=gen)
    for x0, expected_x0 in ((torch.rand(2, 1, 4, 4, generator=gen) - 0.5, None),
                            (torch.full((2, 1, 4, 4), 3.0), torch.ones(2, 1, 4, 4))):
        x = a.sqrt() * x0 + (1 - a).sqrt() * eps
        pred = {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}[kind]
        out = clip_prediction(pred, x, t, scheduler)
        implied = {"epsilon": (x - (1 - a).sqrt() * out) / a.sqrt(), "sample": out,
                   "v_prediction": a.sqrt() * x - (1 - a).sqrt() * out}[kind]
        assert torch.allclose(implied, x0 if expected_x0 is None else expected_x0, atol=1e-4)
