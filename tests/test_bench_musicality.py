"""bench.musicality: each measure tells music from noise the way its docstring says, on audio made here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import musicality
from engine.dsp import SpectrogramConfig

CFG = SpectrogramConfig()
RATE = CFG.sample_rate


def plucks(seconds: float = 6.0, bpm: float = 120.0, seed: int = 0) -> np.ndarray:
    """Decaying harmonic notes (C major arpeggio) on every beat, stereo [2, N]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    audio = np.zeros(n)
    beat = int(60 / bpm * RATE)
    t = np.arange(beat) / RATE
    for k, start in enumerate(range(0, n - beat, beat)):
        f0 = 261.63 * 2 ** ((0, 4, 7, 12)[k % 4] / 12)
        note = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) * np.exp(-4 * t)
        audio[start:start + beat] += 0.2 * note * (0.9 + 0.2 * rng.random())
    return np.stack([audio, audio]).astype(np.float32)


def bursts(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """Broadband noise bursts at random times (what the v1 model made), stereo."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * RATE))
    for start in rng.integers(0, audio.size - 4410, 20):
        audio[start:start + 4410] += rng.standard_normal(4410) * np.exp(-np.arange(4410) / 800)
    return np.stack([audio, audio]).astype(np.float32) * 0.1


def test_measures_tell_notes_on_a_beat_from_bursts_and_noise():
    music, noisy = musicality.clip_measures(plucks(), CFG), musicality.clip_measures(bursts(), CFG)
    noise = musicality.clip_measures(np.random.default_rng(1).standard_normal((2, 6 * RATE)).astype(np.float32)
                                     * 0.1, CFG)
    assert noise["flatness"] > 0.8 and music["flatness"] < 0.1 < noisy["flatness"]
    assert music["beat_clarity"] > 0.6 > 0.4 > noisy["beat_clarity"]
    assert music["chroma_entropy"] < noise["chroma_entropy"]
    assert noisy["jump_rate"] > music["jump_rate"]
    assert music["bands_db"].argmax() <= 3 and noise["bands_db"].argmax() == len(musicality.BAND_NAMES) - 1


def test_compare_uses_the_real_halves_as_tolerance_and_frechet_orders_sets():
    real = [plucks(seed=s) for s in range(4)]
    summary = musicality.set_summary(real, CFG)
    spread = musicality.half_spread(summary)
    same = musicality.compare(summary, spread, musicality.set_summary([plucks(seed=9)], CFG))
    other = musicality.compare(summary, spread, musicality.set_summary([bursts(seed=s) for s in range(2)], CFG))
    assert same["pass"]["beat_clarity"] and not other["pass"]["beat_clarity"]
    assert not other["pass"]["flatness_gate"]
    assert same["frechet"] < other["frechet"]
    assert musicality.frechet_distance(summary["features"], summary["features"]) < 1e-6


def test_gate_table_signs_each_band_and_marks_the_one_outside_its_tolerance():
    """A set 2 dB darker in its top band and 0.5 dB brighter in the others: the table shows -2.0 with a mark
    (outside the 1 dB floor) and +0.5 without one."""
    real = {**{key: 1.0 for key in musicality.SCALAR_MEASURES}, "bands_db": np.full(len(musicality.BAND_NAMES), -10.0)}
    spread = {**{key: 0.1 for key in musicality.SCALAR_MEASURES}, "bands_db": np.full(len(musicality.BAND_NAMES), 0.2)}
    darker = {**real, "bands_db": np.r_[np.full(len(musicality.BAND_NAMES) - 1, -9.5), -12.0]}
    row = musicality.gate_checks(real, spread, darker)
    assert not row["pass"]["bands"] and row["bands"]["difference_db"][-1] == -2.0
    table = musicality.gate_table({"gen": {**row, "frechet": 0.0}}, real, spread, 1.0, 1.0)
    band_rows = [line for line in table.splitlines() if line.startswith("| band ")]
    assert band_rows[-1].endswith("| -2.0 ✗ |") and band_rows[0].endswith("| +0.5 |")
    # flatness is marked by its own gate (25 % of the real figure), not by the half-vs-half spread
    real, spread = {**real, "flatness": 0.040}, {**spread, "flatness": 0.002}
    noisier = musicality.gate_checks(real, spread, {**real, "flatness": 0.045})
    assert not noisier["pass"]["flatness"] and noisier["pass"]["flatness_gate"]
    table = musicality.gate_table({"gen": {**noisier, "frechet": 0.0}}, real, spread, 1.0, 1.0)
    assert "| flatness | 0.040 | 0.002 | 0.045 |" in table


def test_bundles_sharing_a_folder_name_get_a_column_each_and_a_repeated_one_is_refused(tmp_path, capsys):
    assert musicality.bundle_labels([Path("runs/a/bundle"), Path("runs/b/bundle"), Path("models/default")]) == [
        "runs/a/bundle", "runs/b/bundle", "default"]
    with pytest.raises(SystemExit):
        musicality.main(["--real", str(tmp_path), "--bundle", "models/default", "--bundle", "models/../models/default"])
    assert "given more than once" in capsys.readouterr().err


def _fake_summary(values: list[float]) -> dict:
    clips = [{**{key: v for key in musicality.SCALAR_MEASURES}, "bands_db": np.full(len(musicality.BAND_NAMES), v)}
             for v in values]
    return {"clips": clips}


def test_half_spread_is_the_mean_gap_over_every_balanced_split():
    # clips 0, 0, 1, 1: splits {01|23} differ by 1, {02|13} and {03|12} by 0 -> 1/3; the first-vs-second-half split
    # alone would say 1, and for 0, 1, 0, 1 it would say 0
    spread = musicality.half_spread(_fake_summary([0.0, 0.0, 1.0, 1.0]))
    assert spread["onset_rate"] == pytest.approx(1 / 3)
    assert spread["bands_db"] == pytest.approx(np.full(len(musicality.BAND_NAMES), 1 / 3))
    assert musicality.half_spread(_fake_summary([0.0, 1.0, 0.0, 1.0]))["onset_rate"] == pytest.approx(1 / 3)
    masks = musicality.balanced_splits(10)
    assert len(masks) == 126 and all(m.sum() == 5 and m[0] for m in masks)
    assert len({tuple(m) for m in masks}) == 126
    drawn = musicality.balanced_splits(30, most=50)
    assert len(drawn) == 50 and all(m.sum() == 15 for m in drawn)
    with pytest.raises(ValueError, match="at least 2 clips"):
        musicality.balanced_splits(1)


def test_measures_hear_each_channel_not_the_phase_relation_of_the_mix():
    """A right channel in opposite polarity cancels in the mono mix; every measure but the mix's flatness reads the
    clip as it reads the same music in phase."""
    music = plucks()
    flipped = np.stack([music[0], -music[1]])
    same, other = musicality.clip_measures(music, CFG), musicality.clip_measures(flipped, CFG)
    for key in ("onset_rate", "beat_clarity", "chroma_entropy", "mel_change", "jump_rate", "channel_flatness",
                "level_db"):
        assert other[key] == pytest.approx(same[key], abs=1e-6), key
    np.testing.assert_allclose(other["bands_db"], same["bands_db"], atol=1e-6)


def test_level_is_the_clips_rms_in_dbfs():
    music = plucks()
    loud, quiet = musicality.clip_measures(music, CFG), musicality.clip_measures(music * 0.5, CFG)
    assert abs(loud["level_db"] - 20 * np.log10(np.sqrt(np.mean(music.astype(np.float64) ** 2)))) < 0.01
    assert abs(loud["level_db"] - quiet["level_db"] - 6.02) < 0.01
    assert abs(loud["flatness"] - quiet["flatness"]) < 1e-3  # the other measures do not depend on level


def test_channel_flatness_judges_each_channel_not_the_mono_fold_down():
    music = plucks()
    noise = np.random.default_rng(2).standard_normal(music.shape[1]).astype(np.float32) * 0.05
    # the same noise in both channels, one inverted: it cancels in the mono mix and stays in each channel
    stereo = music + np.stack([noise, -noise])
    measures = musicality.clip_measures(stereo, CFG)
    clean = musicality.clip_measures(music, CFG)
    assert abs(measures["flatness"] - clean["flatness"]) < 1e-3
    assert measures["channel_flatness"] > clean["channel_flatness"] + 0.05
    assert abs(clean["channel_flatness"] - clean["flatness"]) < 1e-3  # identical channels: both readings agree


@pytest.mark.parametrize("spec", ["ddim", "nope:3", "ddim:x", "ddim:0", "sde:15@x", "sde:15@30"])
def test_sampling_variants_are_checked_before_anything_renders(spec, capsys):
    with pytest.raises(SystemExit) as stop:
        musicality.main(["--real", "nowhere", "--sampling", spec])
    assert stop.value.code == 2 and spec in capsys.readouterr().err


def test_sampling_variants_parse_with_a_guidance_scale():
    assert musicality._sampling("sde:15@3") == ("sde", 15, 3.0)
    assert musicality._sampling("ddim:50") == ("ddim", 50, None)


def test_cli_judges_generated_sets_against_a_larger_reference_too(tiny_bundle, tmp_path, capsys):
    """The whole command on a real tiny bundle: the issue's table, then the calibrated gates against the held-out
    folder plus another, and both in --json."""
    import json

    import soundfile as sf
    from train_helpers import music_clip, write_clips

    heldout = write_clips(tmp_path / "heldout", count=4, seconds=2.5)
    more = tmp_path / "more"
    more.mkdir()
    for i in range(6):
        sf.write(more / f"other{i}.wav", music_clip(int(2.5 * 44100), seed=50 + i, noise=0.005), 44100)
    out = tmp_path / "figures.json"
    assert musicality.main(["--real", str(heldout), "--bundle", str(tiny_bundle), "--clips", "4", "--seconds", "2",
                            "--seeds", "0", "1", "--reference", str(more), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| onset_rate |" in printed and "Reference: 10 real clips" in printed
    assert "| **all calibrated gates** | | | " in printed and f"{tiny_bundle.name} generated" in printed
    figures = json.loads(out.read_text())
    assert set(figures["calibrated"]["gates"]) == {f"{tiny_bundle.name} generated"}
    assert f"{tiny_bundle.name} reconstructed" in figures["rows"]


def test_mel_change_by_level_finds_where_a_set_is_smooth(tiny_bundle, tmp_path, capsys):
    """bench.mel_change_by_level: cells binned by level at the real set's quartiles, each bin's own mean change;
    then the whole command on a real tiny bundle."""
    from bench import mel_change_by_level as by_level
    from train_helpers import write_clips

    level = np.linspace(-6, 6, 1000)
    change = np.where(level < -3, 1.0, 0.3)
    assert by_level.change_by_level(level, change, np.array([-3.0, 0.0, 3.0])) == pytest.approx(
        [(1.0, 0.25), (0.3, 0.25), (0.3, 0.25), (0.3, 0.25)], abs=0.002)

    # On audio: the cells are bench.musicality's (all of them together read its mel_change) and each quartile holds
    # a quarter of the real set's cells.
    rng = np.random.default_rng(3)
    notes = [plucks(3.0, seed=s) + rng.standard_normal((2, 3 * RATE)).astype(np.float32) * 1e-4 for s in range(2)]
    level, change = by_level.cell_changes(notes, CFG)
    assert change.mean() == pytest.approx(np.mean([musicality.clip_measures(n, CFG)["mel_change"] for n in notes]))
    clean = by_level.change_by_level(level, change, np.quantile(level, by_level.QUANTILES))
    assert [share for _, share in clean] == pytest.approx([0.25] * 4, abs=0.01)
    text = by_level.table({"real": notes, "louder": [n * 2 for n in notes]}, CFG)
    assert text.count("\n| ") == 2 and "Quartile edges of the real set" in text
    assert text.splitlines()[3].startswith("| louder | ")

    heldout = write_clips(tmp_path / "heldout", count=2, seconds=2.5)
    assert by_level.main(["--real", str(heldout), "--bundle", str(tiny_bundle), "--clips", "2", "--seconds", "2",
                          "--seeds", "0"]) == 0
    printed = capsys.readouterr().out
    assert all(f"| {name} | " in printed for name in ("real", "reconstructed", "generated"))


def chord_tones(freqs: list[list[float]], seconds_each: float = 1.0) -> np.ndarray:
    """Each list of frequencies held as a chord for `seconds_each`, one after another, stereo [2, N]."""
    t = np.arange(int(seconds_each * RATE)) / RATE
    parts = [sum(np.sin(2 * np.pi * f * t) for f in chord) * 0.1 for chord in freqs]
    audio = np.concatenate(parts)
    return np.stack([audio, audio]).astype(np.float32)


def test_by_style_tells_a_held_chord_from_moving_harmony_and_splits_by_style(tiny_bundle, tmp_path, capsys):
    """bench.by_style: chroma_movement is ~0 for one chord held and large for chords that change each second; the
    table splits rows by their label or the bass proxy; the command labels real clips by corpus.json's source."""
    import json

    from bench import by_style
    from train_helpers import write_clips

    c_major, f_sharp = [261.63, 329.63, 392.0], [369.99, 466.16, 554.37]
    held = by_style.chroma_movement(chord_tones([c_major] * 4), CFG)
    moving = by_style.chroma_movement(chord_tones([c_major, f_sharp] * 2), CFG)
    assert held < 0.01 and moving > 0.5
    assert by_style.style_of(-20.0) == "chorale-like" and by_style.style_of(-9.0) == "pop-like"

    rows = [{**{k: 1.0 for k in by_style.MEASURES}, "bass_db": -20.0},
            {**{k: 3.0 for k in by_style.MEASURES}, "bass_db": -9.0}]
    text = by_style.table({"gen": rows})
    assert "| gen | all | 2 | 2.000 |" in text and "| gen | chorale-like | 1 | 1.000 |" in text
    assert "| gen | pop-like | 1 | 3.000 |" in text

    real = write_clips(tmp_path / "real", count=3, seconds=2.5)
    (real / "corpus.json").write_text(json.dumps({"pieces": [
        {"wav": "clip0.wav", "source": "music21:bach/bwv1.mxl"}, {"wav": "clip1.wav", "source": "procedural"}]}))
    assert by_style.main(["--real", str(real), "--bundle", str(tiny_bundle), "--seconds", "2",
                          "--seeds", "0"]) == 0
    printed = capsys.readouterr().out
    assert "| real, by source | music21 | 1 |" in printed and "| real, by source | pop | 2 |" in printed
    assert "| real, by bass | all | 3 |" in printed and "| generated | all | 1 |" in printed
    # REPORT.md's split: reference by source, the training split beside a corpus.json, generated sets from their
    # clips' measures (no audio there: chroma_movement left blank).
    corpus = tmp_path / "corpus"
    write_clips(corpus / "train", count=2, seconds=2.5)
    (corpus / "corpus.json").write_text(json.dumps({"pieces": [
        {"wav": "train/clip0.wav", "source": "music21:x", "work": "x", "midi_sha256": "a", "split": "train"},
        {"wav": "train/clip1.wav", "source": "procedural", "midi_sha256": "b", "split": "train"}]}))
    from bench.reference import measure_reference

    measures = [musicality.clip_measures(plucks(2.0, seed=s), CFG) for s in range(3)]
    reference = measure_reference([real], corpus / "corpus.json", CFG, 2.0)
    text = by_style.report_table({"new: generated": measures}, reference, 2.0, CFG)
    assert "| reference | all | 3 |" in text and "| training split | music21 | 1 |" in text
    assert "| new: generated | all | 3 |" in text
    generated_line = next(line for line in text.splitlines() if line.startswith("| new: generated | all"))
    assert "|  |" in generated_line  # chroma_movement: no audio
    with pytest.raises(SystemExit):  # the tiny bundle has no beat conditioning
        by_style.main(["--real", str(real), "--bundle", str(tiny_bundle), "--beat-guidance", "2"])
    assert "needs a beat-conditioned bundle" in capsys.readouterr().err


def test_quality_report_refuses_more_seeds_than_its_reference_can_judge_before_rendering(tiny_bundle, tmp_path,
                                                                                          capsys):
    """The report measures its reference first: 4 seeds against 6 reference clips is an error naming the limit, and
    nothing is written (no REPORT.md, no pictures)."""
    from bench import quality_report
    from train_helpers import write_clips

    real = write_clips(tmp_path / "real", count=3, seconds=2.5)
    more = write_clips(tmp_path / "more", count=3, seconds=2.5)
    out = tmp_path / "report" / "REPORT.md"
    with pytest.raises(SystemExit):
        quality_report.main(["--bundle", str(tiny_bundle), "--heldout", str(real), "--reference", str(more),
                             "--out", str(out), "--clips", "3", "--seconds", "2", "--region-clips", "0",
                             "--seeds", "0", "1", "2", "3"])
    assert "--seeds: 4 clips need a reference of at least 8 clips" in capsys.readouterr().err
    assert not out.exists() and not list(out.parent.glob("*.png"))


def test_quality_report_counts_training_up_to_the_exported_step(tmp_path):
    """A run trained past the checkpoint a bundle was exported from: the report's steps and hours are the bundle's."""
    from bench.quality_report import training_section

    (tmp_path / "unet").mkdir()
    rows = ["step,loss,lr,seconds,grad_norm"] + [f"{s},0.1,1e-4,{2.0 * s},0.5" for s in range(1, 11)]
    (tmp_path / "unet" / "losses.csv").write_text("\n".join(rows) + "\n")
    assert training_section(tmp_path)["unet"] == {"steps": 10, "seconds": 20.0, "seconds_per_step": 2.0}
    assert training_section(tmp_path, unet_step=6)["unet"] == {"steps": 6, "seconds": 12.0, "seconds_per_step": 2.0}


def test_quality_report_takes_training_figures_from_an_earlier_report(tmp_path):
    """On a machine without the run folder, the training section comes from the bundle's earlier report.json: the
    same figures, named as recorded there; another step's record or a report made without --run is refused."""
    import json

    from bench.musicality import _jsonable
    from bench.quality_report import recorded_training_section, training_section
    from bench.report_markdown import training_lines

    (tmp_path / "unet").mkdir()
    rows = ["step,loss,lr,seconds,grad_norm"] + [f"{s},0.1,1e-4,{2.0 * s},0.5" for s in range(1, 11)]
    (tmp_path / "unet" / "losses.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "heldout.csv").write_text("step,heldout_mse_raw,heldout_mse_ema,heldout_mse_ema_grid\n6,0.2,0.1,\n")
    section = training_section(tmp_path, unet_step=6)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(_jsonable({"training": section})))  # as quality_report writes it
    recorded = recorded_training_section(report, unet_step=6)
    assert recorded["unet"] == section["unet"] and recorded["heldout_curve"][0][:3] == [6, 0.2, 0.1]
    assert np.isnan(recorded["heldout_curve"][0][3])  # no gridded score: the table has no such column
    text = "\n".join(training_lines(recorded))
    assert f"Recorded in `{report}`" in text and "6 steps in" in text and "| 6 | 0.2000 | 0.1000 |" in text
    with pytest.raises(ValueError, match="step 6, the bundle's is of step 7"):
        recorded_training_section(report, unet_step=7)
    report.write_text(json.dumps({"training": {}}))
    with pytest.raises(ValueError, match="records no training"):
        recorded_training_section(report)
    report.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable report.json"):
        recorded_training_section(report)


def test_load_clips_spreads_over_a_folder_of_more_files_than_asked(tmp_path):
    """Fewer clips than files: files spread over the sorted listing, not its first names (a corpus split lists all
    of its m21-* windows before its pop-* songs); a file too short for a clip gives way to the next unused one."""
    import soundfile as sf

    from bench.quality_report import load_clips

    rate = 44100
    t = np.arange(2 * rate) / rate
    for name, freq in (("m21-a", 220.0), ("m21-b", 220.0), ("m21-c", 220.0), ("pop-b", 880.0), ("pop-c", 880.0)):
        sf.write(tmp_path / f"{name}.wav", np.stack([np.sin(2 * np.pi * freq * t)] * 2, 1).astype(np.float32), rate)
    sf.write(tmp_path / "pop-a.wav", np.zeros((rate // 2, 2), np.float32), rate)  # too short for 1 s

    def pitches(count):
        return [round(float(np.argmax(np.abs(np.fft.rfft(c[0])))) * rate / len(c[0]))
                for c in load_clips(tmp_path, 1.0, count, rate)]

    assert pitches(2) == [220, 880]  # m21-a and pop-c, not m21-a and m21-b
    assert pitches(3) == [220, 220, 880]
    assert pitches(4) == [220, 220, 880, 880]  # the short pop-a gives way to pop-b
    assert len(load_clips(tmp_path, 1.0, 10, rate)) == 5  # every file that is long enough
