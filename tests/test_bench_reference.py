"""bench.reference: the larger reference set (training pieces left out) and gates calibrated on real music."""
import json

import numpy as np
import pytest
import soundfile as sf

from bench.musicality import BAND_NAMES, SCALAR_MEASURES
from bench.reference import (GATED, calibrated_gates, calibrated_tolerances, corpus_false_failure, frechet_null,
                             literal_false_failure, measure_reference, middle_clip, reference_files, training_files)


def _clips(count: int, seed: int, shift: float = 0.0) -> list[dict]:
    """Per-clip measures drawn like real ones: every scalar and band around a fixed mean, `shift` sds off."""
    rng = np.random.default_rng(seed)
    means = {"flatness": 0.03, "onset_rate": 2.8, "beat_clarity": 0.57, "chroma_entropy": 3.2, "mel_change": 0.3,
             "jump_rate": 0.03, "channel_flatness": 0.03, "level_db": -18.0}
    sds = {k: abs(v) * 0.1 for k, v in means.items()}
    out = []
    for _ in range(count):
        m = {k: means[k] + sds[k] * (rng.standard_normal() + shift) for k in SCALAR_MEASURES}
        m["bands_db"] = np.linspace(-13, -40, len(BAND_NAMES)) + 2.0 * (rng.standard_normal(len(BAND_NAMES)) + shift)
        out.append(m)
    return out


def test_calibrated_tolerances_let_real_sets_pass_jointly_and_tighten_with_size():
    reference = _clips(300, seed=0)
    small, large = calibrated_tolerances(reference, 6, draws=400), calibrated_tolerances(reference, 60, draws=400)
    assert small["joint_pass"] >= 0.9 and large["joint_pass"] >= 0.9 and small["size"] == 6
    assert all(large["tolerance"][k] < small["tolerance"][k] for k in GATED)
    assert (large["tolerance"]["bands_db"] < small["tolerance"]["bands_db"]).all()
    # fresh real sets of 12 pass (nearly always); a set shifted by two clip-sds fails
    tol = calibrated_tolerances(reference, 12, draws=400)
    passed = [calibrated_gates(reference, tol, _clips(12, seed=s))["passed"] for s in range(1, 21)]
    assert sum(passed) >= 15
    shifted = calibrated_gates(reference, tol, _clips(12, seed=99, shift=2.0))
    assert not shifted["passed"] and not shifted["onset_rate"]["passed"]
    assert shifted["onset_rate"]["value"] > shifted["onset_rate"]["real"]
    assert set(shifted["bands"]) == set(BAND_NAMES)
    with pytest.raises(ValueError, match="12 clips need a reference of at least 24 clips"):
        calibrated_tolerances(reference[:23], 12)  # a drawn set of 12 would be judged against only 11
    assert calibrated_tolerances(reference[:24], 12, draws=50)["size"] == 12


def test_the_issues_gates_fail_real_music_often_and_the_rate_is_reported_per_gate():
    rates = literal_false_failure(_clips(120, seed=1), held=10, size=12, draws=100)
    assert set(rates) == {*GATED, "bands", "flatness_gate", "any"}
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    # each half-vs-half gate alone fails a real set about a quarter of the time; together most of the time
    assert 0.1 < rates["onset_rate"] < 0.5 and rates["any"] > 0.6
    with pytest.raises(ValueError, match="10 \\+ 12 clips needed"):
        literal_false_failure(_clips(15, seed=2))


def test_the_issues_gates_on_the_training_corpus_itself_say_what_a_faithful_model_would_fail():
    heldout = _clips(10, seed=3)
    like = corpus_false_failure(_clips(200, seed=4), heldout, size=48, draws=100)
    faster = corpus_false_failure(_clips(200, seed=5, shift=1.5), heldout, size=48, draws=100)
    assert set(like) == {*GATED, "bands", "flatness_gate", "any", "corpus_clips", "whole"}
    assert like["corpus_clips"] == 200
    # a corpus whose clips sit 1.5 clip-sds off the held-out fails nearly always, as one set too
    assert faster["onset_rate"] > 0.9 and faster["onset_rate"] > like["onset_rate"]
    assert "onset_rate" in faster["whole"]["failed"]
    assert faster["whole"]["figures"]["onset_rate"] > faster["whole"]["heldout"]["onset_rate"]
    with pytest.raises(ValueError, match="48 clips to draw, the training corpus has 20"):
        corpus_false_failure(_clips(20, seed=6), heldout, size=48)


def test_training_files_are_the_listed_train_split_and_a_missing_one_is_named(tmp_path):
    piece = lambda name, split: {"id": name, "wav": f"{split}/{name}.wav", "split": split}
    _corpus(tmp_path / "c", [piece("a", "train"), piece("b", "heldout"), piece("c", "train")])
    assert training_files(tmp_path / "c" / "corpus.json") == [tmp_path / "c" / "train" / "a.wav",
                                                              tmp_path / "c" / "train" / "c.wav"]
    (tmp_path / "c" / "train" / "c.wav").unlink()
    with pytest.raises(SystemExit, match="1 train files missing, e.g. .*c.wav"):
        training_files(tmp_path / "c" / "corpus.json")


def _corpus(root, pieces):
    root.mkdir(parents=True, exist_ok=True)
    for p in pieces:
        path = root / p["wav"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros((4410, 2), dtype=np.float32), 44100)
    (root / "corpus.json").write_text(json.dumps({"pieces": pieces}))


def test_reference_files_leave_out_the_pieces_the_model_trained_on(tmp_path):
    piece = lambda name, split, sha, work, source: {"id": name, "wav": f"{split}/{name}.wav", "split": split,
                                                      "midi_sha256": sha, "work": work, "source": source}
    _corpus(tmp_path / "trained", [piece("pop-00000", "train", "aa", "pop-00000", "procedural"),
                                   piece("m21-bach-w0", "train", "bb", "m21-bach", "music21:bach/bwv1.mxl"),
                                   piece("pop-00001", "heldout", "cc", "pop-00001", "procedural")])
    _corpus(tmp_path / "other", [piece("pop-00000", "train", "dd", "pop-00000", "procedural"),  # new song, same name
                                 piece("pop-00001", "train", "aa", "pop-00001", "procedural"),  # a trained song
                                 piece("m21-bach-w1", "train", "ee", "m21-bach", "music21:bach/bwv1.mxl"),
                                 piece("m21-mozart-w0", "heldout", "ff", "m21-mozart", "music21:mozart/k1.mxl")])
    kept, excluded = reference_files([tmp_path / "trained" / "heldout", tmp_path / "other", tmp_path / "other"],
                                     tmp_path / "trained" / "corpus.json")
    names = sorted(str(p.relative_to(tmp_path)) for p in kept)
    assert names == ["other/heldout/m21-mozart-w0.wav", "other/train/pop-00000.wav", "trained/heldout/pop-00001.wav"]
    assert sorted(p.name for p in excluded) == ["m21-bach-w1.wav", "pop-00001.wav"]
    kept, excluded = reference_files([tmp_path / "other"])  # no training corpus: nothing left out
    assert len(kept) == 4 and not excluded
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no reference audio"):
        reference_files([tmp_path / "empty"])


def test_frechet_null_is_what_real_sets_of_a_size_score_against_the_rest():
    rng = np.random.default_rng(0)
    features = [rng.standard_normal((5, 4)) for _ in range(40)]
    small, large = frechet_null(features, 4, draws=50), frechet_null(features, 20, draws=50)
    assert small.shape == (50,) and (small > 0).all() and np.median(large) < np.median(small)
    with pytest.raises(ValueError, match="at least 42 clips"):
        frechet_null(features, 21)


def test_measure_reference_measures_each_kept_clip_once_with_its_source(tmp_path):
    """One clip from the middle of each kept file, in file order: its corpus source, clip_measures with
    chroma_movement, window_features; files too short for a clip are skipped, trained pieces counted as excluded."""
    from bench.metrics import chroma_movement
    from bench.musicality import clip_measures, window_features
    from engine.dsp import SpectrogramConfig
    from train_helpers import write_clips

    cfg = SpectrogramConfig()
    real = write_clips(tmp_path / "real", count=3, seconds=2.5)
    sf.write(real / "short.wav", np.zeros((cfg.sample_rate // 2, 2), dtype=np.float32), cfg.sample_rate)
    (real / "corpus.json").write_text(json.dumps({"pieces": [
        {"wav": "clip0.wav", "source": "music21:bach/bwv1.mxl", "work": "bach1"},
        {"wav": "clip1.wav", "source": "procedural", "midi_sha256": "new"},
        {"wav": "clip2.wav", "source": "procedural", "midi_sha256": "trained"}]}))
    trained = tmp_path / "trained"
    _corpus(trained, [{"wav": "train/a.wav", "split": "train", "midi_sha256": "trained", "source": "procedural"}])

    reference = measure_reference([real], trained / "corpus.json", cfg, 2.0)
    assert reference.sources == ("music21", "pop") and reference.excluded == 1
    assert reference.folders == (real,) and reference.training_corpus == trained / "corpus.json"
    clip = middle_clip(real / "clip0.wav", 2.0, cfg.sample_rate)
    first = reference.per_clip[0]
    assert first["chroma_movement"] == chroma_movement(clip, cfg)
    assert first["chroma_entropy"] == clip_measures(clip, cfg)["chroma_entropy"]
    np.testing.assert_array_equal(reference.features[0], window_features(clip, cfg))
    assert len(reference.per_clip) == len(reference.features) == 2


def test_musicality_refuses_more_seeds_than_the_reference_can_judge_before_rendering(tmp_path, capsys):
    """96 seeds against 103 reference clips would calibrate each drawn set against the other 7: a gate nothing
    fails. bench.musicality says so before it loads a bundle or renders a clip."""
    from bench import musicality
    from train_helpers import write_clips

    real = write_clips(tmp_path / "real", count=3, seconds=2.5)
    more = write_clips(tmp_path / "more", count=3, seconds=2.5)
    with pytest.raises(SystemExit):
        musicality.main(["--real", str(real), "--reference", str(more), "--bundle", str(tmp_path / "no-bundle"),
                         "--clips", "3", "--seconds", "2", "--seeds", "0", "1", "2", "3"])
    err = capsys.readouterr().err
    assert "--seeds: 4 clips need a reference of at least 8 clips" in err and "at most 3" in err


def test_gate_power_reads_folders_and_tabulates_by_held_out_size(tmp_path, capsys):
    """bench.gate_power on real WAV files: clips that are all the same music cannot fail a gate (every gap and
    spread is 0), clips of differing music do; the table has a row per held-out size; bad sizes are named."""
    from bench import gate_power

    rate, t = 44100, np.arange(3 * 44100) / 44100
    same, mixed = tmp_path / "same", tmp_path / "mixed"
    same.mkdir(), mixed.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * np.exp(-(t % 0.5) * 6)
        sf.write(same / f"{i:02d}.wav", np.stack([0.2 * chord, 0.2 * chord], 1), rate)
        other = np.sin(2 * np.pi * rng.uniform(100, 2000) * t) * np.exp(-(t % rng.uniform(0.2, 1.0)) * 4)
        other = other + rng.uniform(0.0, 0.3) * rng.standard_normal(len(t))
        sf.write(mixed / f"{i:02d}.wav", np.stack([0.2 * other, 0.1 * other], 1), rate)
    assert gate_power.main([str(same), "--held", "4", "6", "--size", "4", "--draws", "20", "--seconds", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("12 clips of 2 s") and table[-2].startswith("| 4 |") and table[-1].startswith("| 6 |")
    assert table[-1].endswith("| 0% |") and table[-2].endswith("| 0% |")  # "any": identical clips never fail
    gate_power.main([str(mixed), "--held", "6", "--size", "4", "--draws", "40", "--seconds", "2"])
    assert not capsys.readouterr().out.splitlines()[-1].endswith("| 0% |")
    for argv, message in (([str(same), "--held", "10", "--size", "4"], "--held 10 + --size 4 clips needed"),
                          ([str(tmp_path / "none")], "no such folder"),
                          ([str(same), "--held", "1"], "each --held at least 2"),
                          ([str(same), "--manifest", str(tmp_path / "none.json")], "no bundle manifest")):
        with pytest.raises(SystemExit):
            gate_power.main(argv + ["--seconds", "2"])
        assert message in capsys.readouterr().err


def test_clip_position_sets_middle_clips_against_clips_from_anywhere(tmp_path, capsys):
    """bench.clip_position on real WAV files that play a chord in the middle and near-silence at both ends: clips
    from anywhere read quieter than the middle ones; too-short files and bad arguments are named."""
    from bench import clip_position

    rate = 44100
    t = np.arange(8 * rate) / rate
    tone = 0.3 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * np.exp(-(t % 0.5) * 5)
    envelope = np.where((t > 3) & (t < 5), 1.0, 0.01)
    folder = tmp_path / "songs"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"{i}.wav", np.stack([tone * envelope, tone * envelope], 1), rate)
    assert clip_position.main([str(folder), "--seconds", "2", "--crops-per-file", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("3 files: one middle clip each against 12 clips from anywhere")
    level = next(line for line in out if line.startswith("| level_db |")).split("|")
    assert float(level[4]) < -3.0  # clips from anywhere are mostly the quiet ends
    assert sum(line.startswith("| band ") for line in out) == 8
    for argv, message in (([str(folder), "--seconds", "20"], "no file of 20 s or longer"),
                          ([str(tmp_path / "none")], "no such folder"),
                          ([str(folder), "--crops-per-file", "0"], "--crops-per-file must be at least 1")):
        with pytest.raises(SystemExit):
            clip_position.main(argv)
        assert message in capsys.readouterr().err
