"""Sampler loops over diffusers schedulers, checked with an exact (oracle) noise predictor for a known x0."""
import pytest
import torch

from engine.sampling import LOGSNR_FLOOR, logsnr_timesteps, make_scheduler, noised_start, sample, set_timesteps, start_index_for


def _oracle(x0, scheduler):
    """eps(x_t, t) for data that is exactly x0: (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    abar = scheduler.alphas_cumprod

    def denoise(x, t):
        assert t.dtype == torch.float32 and t.shape == (x.shape[0],)  # float timesteps [B]
        a = abar[t.long()].reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return denoise


@pytest.mark.parametrize("sampler, steps, order, spacing", [
    ("ddim", 20, 2, "linear"), ("dpmpp", 8, 2, "linear"), ("dpmpp", 8, 1, "linear"), ("dpmpp", 8, 3, "linear"),
    ("dpmpp", 8, 2, "logsnr"), ("dpmpp", 15, 2, "logsnr"), ("dpmpp", 3, 2, "logsnr"), ("sde", 8, 2, "logsnr"),
    ("sde", 15, 1, "linear"), ("sde", 12, 2, "logsnr_floor"), ("dpmpp", 6, 3, "logsnr_floor")])
def test_recovers_known_sample_from_noise(sampler, steps, order, spacing):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 2, 16, 8, generator=gen) * 1.6 - 0.8
    scheduler = make_scheduler(sampler, order=order)
    if sampler != "ddim":
        assert scheduler.config.solver_order == order
    seen = []
    out = sample(_oracle(x0, scheduler), torch.randn(x0.shape, generator=gen), scheduler, steps,
                 callback=seen.append, disable=True, spacing=spacing, generator=gen)
    assert [s["i"] for s in seen] == list(range(steps)) and (steps == 1 or seen[0]["t"] > seen[-1]["t"])
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
    assert make_scheduler("sde").config.algorithm_type == "sde-dpmsolver++"
    with pytest.raises(ValueError, match="unknown spacing"):
        set_timesteps(make_scheduler("dpmpp"), 10, "karras")
    with pytest.raises(ValueError, match="logsnr spacing needs a DPM-Solver"):
        sample(lambda x, t: x, torch.zeros(1, 1, 2, 2), make_scheduler("ddim"), 10, disable=True, spacing="logsnr")


def test_the_stochastic_sampler_draws_its_step_noise_from_the_generator_row_by_row():
    """sde: one seed, one result; another seed, another; a list of generators gives each batch row the result its
    own generator gives alone."""
    def denoise(x, t):
        return torch.tanh(x) * (t[:, None, None, None] / 1000)

    start = torch.randn(2, 2, 8, 4, generator=torch.Generator().manual_seed(3))

    def run(x, seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return sample(denoise, x, make_scheduler("sde"), 6, disable=True, spacing="logsnr",
                      generator=gens if len(gens) > 1 else gens[0])

    first, again, other = run(start[:1], [7]), run(start[:1], [7]), run(start[:1], [8])
    assert torch.equal(first, again) and (first - other).abs().max() > 1e-3
    plain = sample(denoise, start[:1], make_scheduler("dpmpp", order=2), 6, disable=True, spacing="logsnr")
    assert (first - plain).abs().max() > 1e-3  # the step noise reaches the result
    both = run(start, [7, 9])
    torch.testing.assert_close(both[:1], first)
    torch.testing.assert_close(both[1:], run(start[1:], [9]))


@pytest.mark.parametrize("steps", [1, 2, 15, 50, 200, 1000])
def test_logsnr_timesteps_distinct_and_evenly_spread_in_log_snr(steps):
    """Distinct integers from T-1 down, strictly decreasing, never below 0, for any step count up to T; where the
    cosine schedule is not steep, consecutive log-SNR gaps are equal (to the rounding of t)."""
    sched = make_scheduler("dpmpp")
    ts = logsnr_timesteps(sched.alphas_cumprod, steps)
    assert len(ts) == steps and ts[0] == 999 and ts[-1] >= 0 and all(a > b for a, b in zip(ts, ts[1:]))
    set_timesteps(sched, steps, "logsnr")
    assert sched.timesteps.tolist() == ts
    if steps == 15:
        abar = sched.alphas_cumprod.double()
        lam = (0.5 * torch.log(abar / (1 - abar)))[ts]
        gaps = (lam[1:] - lam[:-1])[6:]  # past the steep end near T, where targets share timesteps
        assert torch.allclose(gaps, gaps.mean().expand_as(gaps), rtol=0.1)
        assert sum(t >= 950 for t in ts) >= 5 and ts[-1] > 0  # many steps near pure noise; none wasted at t=0
        linear = make_scheduler("dpmpp")
        set_timesteps(linear, 15)
        assert sum(t >= 950 for t in linear.timesteps.tolist()) == 1


@pytest.mark.parametrize("steps", [1, 2, 12, 200, 1000])
def test_logsnr_floor_timesteps_jump_to_the_floor_then_even_log_snr(steps):
    """From a floor: T-1 first, then (when the steps allow) the timestep nearest the floor's log-SNR, then even
    log-SNR gaps; still distinct and decreasing for any step count."""
    sched = make_scheduler("sde")
    ts = logsnr_timesteps(sched.alphas_cumprod, steps, LOGSNR_FLOOR)
    assert len(ts) == steps and ts[0] == 999 and ts[-1] >= 0 and all(a > b for a, b in zip(ts, ts[1:]))
    set_timesteps(sched, steps, "logsnr_floor")
    assert sched.timesteps.tolist() == ts
    abar = sched.alphas_cumprod.double()
    lam = 0.5 * torch.log(abar / (1 - abar))
    if 1 < steps <= 200:
        assert abs(float(lam[ts[1]]) - LOGSNR_FLOOR) < 0.1
    if steps == 12:
        gaps = lam[ts][2:] - lam[ts][1:-1]
        assert torch.allclose(gaps, gaps.mean().expand_as(gaps), rtol=0.1)
        assert sum(t >= 950 for t in ts) == 3  # plain log-SNR spacing puts 6 of 12 there
        assert sum(t >= 950 for t in logsnr_timesteps(sched.alphas_cumprod, steps)) == 6


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


@pytest.mark.parametrize("steps", [30, 150])
def test_ddim_steps_that_do_not_divide_the_schedule_step_to_the_next_timestep(steps):
    """diffusers' DDIMScheduler steps to t - T // steps, not to the next of its own timesteps, when steps does not
    divide T: from the same noise, with an exact noise predictor, it misses x0 by a few percent at 150 steps.
    The engine's "ddim" runs those step counts as first-order DPM-Solver++ (the DDIM update on the true next
    timestep) and recovers x0; step counts that divide T keep DDIMScheduler (the paper's)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 2, 16, 8, generator=gen) * 1.6 - 0.8
    noise = torch.randn(x0.shape, generator=gen)
    engine_ddim = make_scheduler("ddim", steps=steps)
    assert isinstance(engine_ddim, DPMSolverMultistepScheduler) and engine_ddim.config.solver_order == 1
    assert isinstance(make_scheduler("ddim", steps=200), DDIMScheduler)
    plain = make_scheduler("ddim")
    off = (sample(_oracle(x0, plain), noise, plain, steps, disable=True) - x0).abs().max()
    out = sample(_oracle(x0, engine_ddim), noise, engine_ddim, steps, disable=True)
    assert torch.allclose(out, x0, atol=1e-5)
    if steps == 150:
        assert off > 0.01  # the rounded previous timestep, measurably off
