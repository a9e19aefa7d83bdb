"""The tempo prior: training records each piece's tempo, metre and length, the export copies them into the
manifest, and a generation that names no tempo follows one drawn by its seed (engine.beat_grid.BeatSettings)."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engine.beat_grid import BeatSettings
from train_helpers import write_clips
from training.data.audio_folder import AudioFolderDataset
from training.data.beats import write_sidecar

PRIOR = [[70.0, 3, 5.0], [150.0, 4, 5.0]]


@pytest.fixture(scope="module")
def prior_bundle(tmp_path_factory) -> Path:
    from conftest import make_beat_bundle

    return make_beat_bundle(tmp_path_factory.mktemp("prior") / "bundle",
                            {"min": 70.0, "median": 70.0, "max": 150.0, "pieces": PRIOR})


def test_training_records_each_pieces_tempo_and_metre_and_the_export_copies_them(tmp_path, prior_bundle):
    folder = write_clips(tmp_path / "data", count=2, seconds=3.0)
    waltz = np.arange(0, 3.0, 60 / 90)  # 90 BPM in 3/4
    write_sidecar(folder / "clip0.wav", waltz, waltz[::3])
    march = np.arange(0, 3.0, 0.5)  # 120 BPM, one downbeat only: 4/4 assumed
    write_sidecar(folder / "clip1.wav", march, march[:1])
    summary = AudioFolderDataset(folder, crop_samples=4096).tempo_summary()
    assert summary["pieces"] == [[90.0, 3, 3.0], [120.0, 4, 3.0]]
    beat = json.loads((prior_bundle / "manifest.json").read_text())["beat"]
    assert beat["tempo_prior"] == PRIOR and beat["default_bpm"] == 70.0


def test_a_drawn_tempo_is_the_seeds_and_weighted_by_length():
    settings = BeatSettings(6, tempo_prior=((60.0, 3, 1.0), (120.0, 4, 99.0)))
    draws = Counter(settings.drawn_tempo(seed) for seed in range(400))
    assert set(draws) <= {(60.0, 3), (120.0, 4)} and 380 <= draws[(120.0, 4)] < 400
    assert all(settings.drawn_tempo(s) == settings.drawn_tempo(s) for s in range(20))
    assert BeatSettings(6).drawn_tempo(0) is None  # no prior: the default tempo
    back = BeatSettings.from_dict(settings.to_dict())
    assert back == settings


@pytest.mark.parametrize("entry, field", [([70.0, 3], "entry 0"), ([0.5, 4, 1.0], "entry 0"),
                                          ([70.0, 3.5, 1.0], "entry 0"), ([70.0, 4, 0], "entry 0"),
                                          ([70.0, True, 1.0], "entry 0")])
def test_bad_tempo_priors_are_named(prior_bundle, tmp_path, entry, field):
    from engine.bundle import BundleError, load_bundle

    copy = Path(shutil.copytree(prior_bundle, tmp_path / "copy"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["beat"]["tempo_prior"] = [entry, PRIOR[1]]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"tempo_prior.*{field}"):
        load_bundle(copy)
    manifest["beat"]["tempo_prior"] = {"bpm": 70}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="tempo_prior"):
        load_bundle(copy)


def test_generate_without_a_tempo_follows_the_one_its_seed_draws(prior_bundle):
    from engine.api import Engine, render
    from engine.regions import Tempo
    from engine.tasks.generate import generate_batch

    engine = Engine.load(prior_bundle)
    common = dict(seconds=1.0, steps=3, gl_iters=2)
    drawn = {seed: render(engine, "generate", seed=seed, **common) for seed in range(6)}
    tempos = {seed: (r.info["bpm"], r.info["time_signature"]) for seed, r in drawn.items()}
    assert set(tempos.values()) == {(70.0, "3/4"), (150.0, "4/4")}  # both pieces come up in six seeds
    assert all(r.info["tempo_drawn"] for r in drawn.values())
    for seed in (0, 1):  # the same clip as asking for that tempo
        bpm, metre = tempos[seed]
        asked = render(engine, "generate", seed=seed, tempo=Tempo(bpm, int(metre[0])), **common)
        np.testing.assert_array_equal(asked.audio, drawn[seed].audio)
        assert asked.info["tempo_drawn"] is False
    batch = generate_batch(engine, 1.0, list(range(6)), steps=3, gl_iters=2)  # each row its own grid
    for seed, result in enumerate(batch):
        assert (result.info["bpm"], result.info["time_signature"]) == tempos[seed]
        np.testing.assert_allclose(result.audio, drawn[seed].audio, atol=2e-4)


def test_render_cli_says_which_tempo_the_seed_drew(prior_bundle, tmp_path, capsys):
    from engine.cli.main import main

    out = tmp_path / "clip.wav"
    assert main(["generate", "--bundle", str(prior_bundle), "--seconds", "0.5", "--seed", "3", "--steps", "2",
                 "--gl-iters", "1", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["tempo_drawn"] and f"{info['bpm']:g} BPM {info['time_signature']} drawn by the seed" in captured.err


def test_musicality_compares_the_drawn_tempos_with_a_fixed_one(prior_bundle, tmp_path, capsys):
    from bench import musicality

    heldout = write_clips(tmp_path / "heldout", count=4, seconds=2.5)
    assert musicality.main(["--real", str(heldout), "--bundle", str(prior_bundle), "--clips", "4", "--seconds", "2",
                            "--seeds", "0", "1", "--fixed-tempo", "100"]) == 0
    table = capsys.readouterr().out
    assert f"| {prior_bundle.name} generated | {prior_bundle.name} reconstructed | {prior_bundle.name} at 100 BPM |" \
        in table


def test_osc_done_names_the_drawn_tempo_and_a_set_one(prior_bundle, tmp_path):
    """/msanii/done's fifth argument: the tempo the clip follows, drawn by the seed until the client sets one."""
    from bridge.paths import PathPolicy
    from bridge.server import OscBridge
    from bridge.settings import RenderSettings
    from engine.api import Engine
    from osc_helpers import OscClient

    engine = Engine.load(prior_bundle)
    (tmp_path / "out").mkdir()
    server = OscBridge(engine, PathPolicy(tmp_path / "out", []), port=0, reply_port=None,
                       settings=RenderSettings(steps=2, gl_iters=1)).start()
    client = OscClient(server.address)
    try:
        client.send("/msanii/generate", "drawn", 0.5, 3)
        drawn = client.wait_for("/msanii/done", lambda m: m.args[0] == "drawn", timeout=60).args
        assert drawn[4] == engine.default_tempo(3).bpm and drawn[4] in (70.0, 150.0)
        client.send("/msanii/set", "bpm", 96.0)
        client.wait_for("/msanii/set", lambda m: m.args[0] == "bpm")
        client.send("/msanii/generate", "set", 0.5, 3)
        assert client.wait_for("/msanii/done", lambda m: m.args[0] == "set", timeout=60).args[4] == 96.0
    finally:
        client.close()
        server.close()
