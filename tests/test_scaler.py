"""The learned scaler of Appendix A: updates only in train mode, frozen in eval, round trip, saveable."""
import pytest
import torch

from engine.dsp import LearnedScaler, ScalerStats, normalise, denormalise


def _batch(seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 2, 128, 32, generator=g) * 3 - 6 + shift


def test_train_mode_uses_batch_stats_and_updates_running():
    scaler = LearnedScaler()
    y = scaler(_batch(0))
    assert y.min() == pytest.approx(-1.0) and y.max() == pytest.approx(1.0)
    first = scaler.stats()
    scaler(_batch(1, shift=5.0))
    second = scaler.stats()
    assert second.mean > first.mean  # running mean moved towards the new batch...
    assert second.mean - first.mean == pytest.approx(0.001 * 0.99 * 5.0, rel=0.1)  # ...by the decayed momentum
    assert float(scaler.momentum) == pytest.approx(1e-3 * 0.99)


def test_eval_mode_is_frozen_and_deterministic():
    scaler = LearnedScaler()
    for i in range(5):
        scaler(_batch(i))
    scaler.eval()
    before = scaler.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    x = _batch(9, shift=10.0)
    a, b = scaler(x), scaler(x)
    assert torch.equal(a, b)
    for k, v in scaler.state_dict().items():
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(a, normalise(x, scaler.stats()))


def test_round_trip_and_serialisation():
    scaler = LearnedScaler()
    scaler(_batch(0))
    scaler.eval()
    stats = ScalerStats.from_dict(scaler.stats().to_dict())
    x = _batch(3) * 0.5 + stats.mean * 0.5  # inside the range, so the clamp does not bite
    torch.testing.assert_close(denormalise(normalise(x, stats), stats), x, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="max"):
        ScalerStats.from_dict({**stats.to_dict(), "max": stats.min})


def test_unfitted_scaler_refuses_to_export():
    with pytest.raises(RuntimeError, match="not seen"):
        LearnedScaler().stats()
