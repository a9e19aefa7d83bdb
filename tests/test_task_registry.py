"""Adding a task is one module and one registry entry: a toy task written at test time (nothing else in the tree
touched) appears in the Python API, as a `msanii-render` subcommand and as an OSC verb the bridge serves. Also: the
built-in tasks declare exactly the keywords their functions take, and every front end reads them from one place."""
from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import engine.tasks as registry
from bridge.paths import PathPolicy
from bridge.server import OscBridge
from bridge.settings import RenderSettings
from engine.api import Engine, render
from engine.tasks import BUILTIN, TaskError, get_task, task_names
from osc_helpers import REPO, OscClient

# The whole of a new task: its function, its declaration and its registry entry (the register() call).
TOY_TASK = '''
"""A sine tone: the smallest task there is."""
import numpy as np

from engine.render import RenderResult
from engine.tasks import REQUIRED, Param, Task, register


def tone(engine, seconds, frequency=440.0, seed=None, callback=None):
    t = np.arange(round(seconds * engine.sample_rate)) / engine.sample_rate
    audio = np.repeat(0.25 * np.sin(2 * np.pi * frequency * t)[None], engine.channels, 0).astype(np.float32)
    if callback is not None:
        callback(1.0)
    return RenderResult(audio, engine.sample_rate, {"task": "tone", "seed": seed, "frequency": frequency})


TASK = register(Task("tone", "a sine tone (the toy task of tests/test_task_registry.py)", tone,
                     params=(Param("seconds", "float", REQUIRED, "length in seconds"),
                             Param("frequency", "float", 440.0, "pitch in Hz"),
                             Param("seed", "seed", None, "unused: a tone has no randomness"))))
'''


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine.load(tiny_bundle, device="cpu", threads=2)


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    """The toy task's module, written to tmp_path and imported; the registry is restored afterwards."""
    (tmp_path / "toy_tone_task.py").write_text(TOY_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.delitem(sys.modules, "toy_tone_task", raising=False)
    module = importlib.import_module("toy_tone_task")
    yield tmp_path
    sys.modules.pop("toy_tone_task", None)
    assert module.TASK is not None


def test_the_toy_task_is_in_the_python_api(toy, engine):
    assert "tone" in task_names() and get_task("tone").summary.startswith("a sine tone")
    result = render(engine, "tone", seconds=0.5, frequency=220.0)
    assert result.audio.shape == (2, 22050) and result.info["frequency"] == 220.0
    with pytest.raises(TaskError, match="tone has no parameter 'pitch'"):
        render(engine, "tone", seconds=0.5, pitch=3)
    with pytest.raises(TaskError, match="tone needs seconds"):
        render(engine, "tone")
    with pytest.raises(TaskError, match="unknown task 'tones'"):
        render(engine, "tones", seconds=1.0)


def test_the_toy_task_is_a_msanii_render_subcommand(toy, tiny_bundle):
    # msanii-render's own entry point, in a fresh interpreter that has imported the toy module (as a plugin would)
    run = [sys.executable, "-c", "import sys, toy_tone_task; from engine.cli import main; sys.exit(main())"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy), str(REPO)])}
    listing = subprocess.run(run + ["--help"], capture_output=True, text=True, env=env, timeout=120)
    assert listing.returncode == 0 and "tone" in listing.stdout and "a sine tone" in listing.stdout
    usage = subprocess.run(run + ["tone", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert "--seconds SECONDS" in usage.stdout and "--frequency FREQUENCY" in usage.stdout
    out = toy / "tone.wav"
    done = subprocess.run(run + ["tone", "--bundle", str(tiny_bundle), "--seconds", "0.25", "--frequency", "330",
                                 "--out", str(out), "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    audio, rate = sf.read(str(out), always_2d=True)
    assert rate == 44100 and audio.shape == (11025, 2)
    peak_bin = np.argmax(np.abs(np.fft.rfft(audio[:, 0])))
    assert peak_bin * rate / len(audio) == pytest.approx(330, abs=5)


def test_the_toy_task_is_an_osc_verb(toy, engine, tmp_path):
    out = tmp_path / "out"
    bridge = OscBridge(engine, PathPolicy(out, []), port=0, reply_port=None, settings=RenderSettings()).start()
    client = OscClient(bridge.address)
    try:
        client.send("/msanii/tone", "t1", 0.5, 220.0, 5)
        done = client.wait_for("/msanii/done", lambda m: m.args[0] == "t1", timeout=60).args
        assert Path(done[1]).parent == out.resolve() and done[2] == pytest.approx(0.5) and done[3] == 5
        assert sf.info(done[1]).frames == 22050
        client.send("/msanii/tone", "t2")
        reason = client.wait_for("/msanii/fail", lambda m: m.args[0] == "t2").args[1]
        assert reason == "expected 2..4 arguments (/msanii/tone <id> <seconds> [frequency] [seed]), got 1"
    finally:
        client.close()
        bridge.close()


def test_builtin_tasks_declare_what_their_functions_take():
    assert [t.name for t in BUILTIN] == ["generate", "audio2audio", "inpaint", "interpolate", "loop", "outpaint"]
    for task in BUILTIN:
        taken = set(inspect.signature(task.function).parameters) - {"engine", "callback"}
        assert taken == {p.name for p in task.params}, task.name


def test_no_front_end_finds_tasks_by_name():
    for path in ("engine/cli", "bridge"):
        for source in (REPO / path).rglob("*.py"):
            text = source.read_text()
            assert "importlib" not in text and "pkgutil" not in text, source
