"""OSC server with batching on: queued generate jobs of one length and settings render as one batch over real UDP,
each job still gets its own replies and its own file, equal to rendering that seed alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine
from engine.tasks import Task
from engine.tasks.generate import generate
from osc_helpers import OscClient


class RecordingEngine:
    """The real engine, recording the seeds of every batch the server renders with it."""

    def __init__(self, engine: Engine, monkeypatch) -> None:
        self._engine = engine
        self.batches: list[list[int]] = []
        run_batch = Task.run_batch

        def recording(task, engine, params, callback=None):
            if engine is self:
                self.batches.append([p["seed"] for p in params])
            return run_batch(task, engine, params, callback)
        monkeypatch.setattr(Task, "run_batch", recording)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine.load(tiny_bundle, device="cpu", threads=2)


def test_queued_generations_render_as_one_batch(engine, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    recording = RecordingEngine(engine, monkeypatch)
    bridge = OscBridge(recording, PathPolicy(out, []), port=0, reply_port=None, max_pending=6,
                       settings=RenderSettings(steps=3, gl_iters=3), max_batch=3).start()
    client = OscClient(bridge.address)
    try:
        client.send("/msanii/set", "steps", 300)  # a long first job, so the next ones wait in the queue together
        client.wait_for("/msanii/set")
        client.send("/msanii/generate", "hold", 3.0, 1)
        client.wait_for("/msanii/progress", lambda m: m.args[0] == "hold" and m.args[1] > 0)
        client.send("/msanii/set", "steps", 3)
        client.wait_for("/msanii/set", lambda m: m.args == ["steps", 3])
        for job, seconds, seed in (("a", 1.0, 11), ("b", 1.0, 12), ("other", 2.0, 13), ("c", 1.0, 14),
                                   ("d", 1.0, 15)):
            client.send("/msanii/generate", job, seconds, seed)
            client.wait_for("/msanii/accepted", lambda m, j=job: m.args[0] == j)
        client.send("/msanii/cancel", "hold")
        client.wait_for("/msanii/fail", lambda m: m.args == ["hold", "cancelled"])
        done = {job: client.wait_for("/msanii/done", lambda m, j=job: m.args[0] == j, timeout=60)
                for job in ("a", "b", "other", "c", "d")}
    finally:
        client.close()
        bridge.close()
    # "a" takes "b" and "c" along (max 3); "other" (another length) and "d" (the 4th) run alone after them.
    assert recording.batches == [[11, 12, 14]]
    for job, seed in (("a", 11), ("b", 12), ("c", 14)):
        path = Path(done[job].args[1])
        assert done[job].args[3] == seed and path.parent == out.resolve()
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        alone = generate(engine, 1.0, seed=seed, steps=3, gl_iters=3).audio.T
        assert rate == 44100 and audio.shape == alone.shape
        assert np.abs(audio - alone).max() < 1e-3 * max(np.abs(alone).max(), 1e-6) + 2 ** -22  # 24-bit file
        fractions = [m.args[1] for m in client.of("/msanii/progress", job)]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert sorted(p.name.split("-")[0] for p in out.iterdir()) == ["a", "b", "c", "d", "other"]


def test_batching_is_refused_with_worker_processes(tiny_bundle, tmp_path):
    from engine.serving.worker_process import WorkerSpec
    with pytest.raises(ValueError, match="batching runs on the in-process job queue"):
        OscBridge(None, PathPolicy(tmp_path, []), port=0, workers=[WorkerSpec(str(tiny_bundle))], max_batch=2)


@pytest.mark.parametrize("extra, message", [(["--batch", "0"], "--batch must be >= 1, got 0"),
                                            (["--batch", "2"], "--batch renders on the in-process queue: add "
                                                               "--workers 0")])
def test_batch_option_errors(tiny_bundle, tmp_path, extra, message):
    from bridge.cli import main
    with pytest.raises(SystemExit, match=message):
        main(["--bundle", str(tiny_bundle), "--output-dir", str(tmp_path / "o"), *extra])


def test_backend_options_reach_the_engine(tiny_bundle, program_bundle, tmp_path, capsys):
    """msanii-osc --backend/--precision: passed to Engine.load in the server process and in worker specs."""
    from bridge.cli import main
    from engine.serving.worker_process import plan_workers

    code = main(["--bundle", str(tiny_bundle), "--output-dir", str(tmp_path / "o"), "--workers", "0",
                 "--backend", "torch"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot open the engine" in err and "msanii-export --torch" in err
    specs = plan_workers(program_bundle, 2, ["cpu"], 1, backend="torch", precision="bf16")
    assert [(s.backend, s.precision, s.cuda_graphs) for s in specs] == [("torch", "bf16", False)] * 2
