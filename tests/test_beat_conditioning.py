"""Beat conditioning end to end: MIDI -> beat sidecar -> training features, and tempo -> the same features at
inference; a tiny beat-conditioned U-Net trained by the real CLI, exported to ONNX (and torch programs) and run by
the engine with and without a tempo."""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch

from engine.beat_grid import BEAT_FEATURES, BeatSettings, beat_features, counting_unit, grid_positions, tempo_grid
from engine.dsp import SpectrogramConfig
from train_helpers import music_clip, write_clips
from training.data.audio_folder import AudioFolderDataset
from training.data.beats import annotate_pieces, beats_from_midi, read_sidecar, sidecar_path, write_sidecar
from training.data.errors import DataError, DataWarning


def _midi(path: Path, tempos: list[tuple[int, int]], signatures: list[tuple[int, int, int]], end_tick: int,
          tpb: int = 480) -> Path:
    """A one-track MIDI file with set_tempo at (tick, bpm), time_signature at (tick, num, den), a note to end_tick."""
    track = mido.MidiTrack()
    events = [(t, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(b))) for t, b in tempos]
    events += [(t, mido.MetaMessage("time_signature", numerator=n, denominator=d)) for t, n, d in signatures]
    events += [(0, mido.Message("note_on", note=60, velocity=80)), (end_tick, mido.Message("note_off", note=60))]
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=tpb)
    midi.tracks.append(track)
    midi.save(path)
    return path


def test_beats_follow_tempo_changes_and_metre(tmp_path):
    # 4 beats of 4/4 at 120 BPM (0.5 s each), then 60 BPM in 3/4 for a bar, then 6/8 (dotted-quarter beats)
    path = _midi(tmp_path / "a.mid", [(0, 120), (1920, 60)], [(0, 4, 4), (1920, 3, 4), (3360, 6, 8)], 3360 + 1440)
    beats, downbeats = beats_from_midi(path)
    np.testing.assert_allclose(beats[:8], [0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0], atol=1e-9)
    np.testing.assert_allclose(beats[8:], [6.5, 8.0], atol=1e-9)  # 6/8 at 60 quarters/min: 1.5 s per beat
    np.testing.assert_allclose(downbeats, [0, 2.0, 5.0, 8.0], atol=1e-9)
    assert counting_unit(6, 8) == (1.5, 2.0) and counting_unit(3, 8) == (0.5, 3.0)


def test_training_grid_equals_the_tempo_grid_inference_builds(tmp_path):
    """The contract: a piece at a steady 120 BPM in 3/4 seen through its sidecar gives the features a render at
    Tempo(120, 3/4) feeds the U-Net, frame by frame (here for a crop 7.3 s in)."""
    path = _midi(tmp_path / "b.mid", [(0, 120)], [(0, 3, 4)], 480 * 3 * 12)
    beats, downbeats = beats_from_midi(path)
    rate = 44_100 / 512
    times = 7.3 + np.arange(200) / rate
    trained = beat_features(*grid_positions(times, beats, downbeats))
    rendered = tempo_grid(200, rate, 120.0, 3, 4, origin_s=0.0, offset_s=7.3)
    np.testing.assert_allclose(trained, rendered, atol=1e-4)
    assert trained.shape == (BEAT_FEATURES, 200)
    # past the last beat the grid goes on at the last interval
    late = beat_features(*grid_positions(np.array([30.0]), beats, downbeats))
    np.testing.assert_allclose(late, tempo_grid(1, rate, 120.0, 3, 4, offset_s=30.0), atol=1e-4)


def test_sidecars_round_trip_and_bad_ones_are_named(tmp_path):
    wav = write_clips(tmp_path / "data", count=2, seconds=1.0) / "clip0.wav"
    out = write_sidecar(wav, np.array([0.0, 0.5, 1.0]), np.array([0.0]))
    assert out == sidecar_path(wav) and out.name == "clip0.beats.json"
    beats, downbeats = read_sidecar(wav)
    np.testing.assert_allclose(beats, [0.0, 0.5, 1.0])
    with pytest.raises(FileExistsError):
        write_sidecar(wav, beats, downbeats)
    assert not list(out.parent.glob(".*tmp"))  # written through a temporary name
    bad = sidecar_path(out.parent / "clip1.wav")
    bad.write_text(json.dumps({"format": "msanii-beats", "beats": [1.0, 0.5]}))
    with pytest.raises(DataError, match="increasing"):
        read_sidecar(out.parent / "clip1.wav")
    with warnings.catch_warnings(record=True) as caught:  # the audio stays usable without its grid
        warnings.simplefilter("always", DataWarning)
        dataset = AudioFolderDataset(out.parent, crop_samples=4096)
    assert len(dataset) == 2 and dataset.files_with_beats == 1
    assert any("clip1.beats.json" in str(w.message) for w in caught)
    assert dataset.tempo_summary() == {"min": 120.0, "median": 120.0, "max": 120.0, "pieces": [[120.0, 4, 1.0]]}


def test_corpus_pieces_are_annotated_from_their_midi(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "midi").mkdir()
    write_clips(tmp_path / "train", count=1, seconds=1.0)
    _midi(tmp_path / "midi" / "clip0.mid", [(0, 90)], [(0, 4, 4)], 480 * 8)
    pieces = [{"wav": "train/clip0.wav", "midi": "midi/clip0.mid"}, {"wav": "train/gone.wav", "midi": "x.mid"}]
    assert annotate_pieces(tmp_path, pieces) == 1  # a piece without audio is passed over
    beats, _ = read_sidecar(tmp_path / "train" / "clip0.wav")
    np.testing.assert_allclose(np.diff(beats), 60 / 90, atol=1e-6)  # stored to the microsecond
    assert annotate_pieces(tmp_path, pieces) == 0  # kept unless overwrite


def _beat_data(folder: Path, bpm: float = 120.0) -> Path:
    write_clips(folder, count=2, seconds=3.0)
    for wav in folder.glob("*.wav"):
        beats = np.arange(0, 3.5, 60 / bpm)
        write_sidecar(wav, beats, beats[::4])
    return folder


def test_cli_trains_a_beat_conditioned_unet_and_refuses_data_without_grids(tmp_path, capsys):
    from training.checkpoint import load_checkpoint
    from training.cli import main

    data = _beat_data(tmp_path / "data")
    args = ["unet", "--data", str(data), "--preset", "tiny", "--steps", "3", "--batch-size", "2",
            "--crop-frames", "16", "--beat-conditioning", "--no-progress", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "unet" / "last.pt", "unet")
    assert ckpt["model_config"]["beat_features"] == BEAT_FEATURES
    assert ckpt["train_config"]["beat_conditioning"] is True
    assert ckpt["data"]["beat_tempo"] == {"min": 120.0, "median": 120.0, "max": 120.0,
                                          "pieces": [[120.0, 4, 3.0], [120.0, 4, 3.0]]}
    assert float(ckpt["model"]["beat.weight"].abs().sum()) > 0  # the projection learned from zero

    plain = write_clips(tmp_path / "plain", count=2, seconds=3.0)
    code = main([*args[:2], str(plain), *args[3:], "--out", str(tmp_path / "run2")])
    assert code == 2 and "beat sidecar" in capsys.readouterr().err
    code = main([*args, "--out", str(tmp_path / "run"), "--resume", "--beat-dropout", "0.5", "--steps", "4"])
    assert code == 2 and "beat-dropout" in capsys.readouterr().err


def test_warm_start_from_an_unconditioned_model_begins_as_that_model(tmp_path):
    from training.models import UNet, unet_preset
    from training.warm_start import load_initial_weights

    torch.manual_seed(0)
    plain = UNet(unet_preset("tiny"))
    torch.save({"kind": "unet", "model": plain.state_dict()}, tmp_path / "plain.pt")
    conditioned = UNet(dataclasses.replace(unet_preset("tiny"), beat_features=BEAT_FEATURES))
    report = load_initial_weights(conditioned, tmp_path / "plain.pt", "unet")
    assert "beat.weight" in report
    x, t = torch.randn(1, 2, 128, 16), torch.tensor([300.0])
    grid = torch.from_numpy(tempo_grid(16, 86.1, 120.0))[None]
    with torch.no_grad():
        torch.testing.assert_close(conditioned.eval()(x, t, grid), plain.eval()(x, t))


@pytest.fixture(scope="module")
def beat_bundle(tmp_path_factory) -> Path:
    """A tiny beat-conditioned bundle (random weights, a non-zero beat projection), ONNX + torch programs."""
    from conftest import make_beat_bundle

    return make_beat_bundle(tmp_path_factory.mktemp("beat") / "beat-bundle",
                            {"min": 80.0, "median": 96.0, "max": 120.0}, torch_programs=True)


def test_export_records_the_grid_and_the_parity_covers_it(beat_bundle):
    manifest = json.loads((beat_bundle / "manifest.json").read_text())
    assert manifest["beat"] == {"features": BEAT_FEATURES, "default_bpm": 96.0, "trained_bpm": [80.0, 120.0]}
    assert manifest["parity"]["unet"]["max_abs_error"] < 1e-3
    assert manifest["parity"]["torch"]["unet"]["max_rel_error"] < 1e-4
    import onnx
    names = [i.name for i in onnx.load(str(beat_bundle / "unet.onnx")).graph.input]
    assert names == ["x", "t", "beat"]


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_generate_follows_the_tempo_it_is_given(beat_bundle, backend):
    from engine.api import Engine, render
    from engine.regions import Tempo

    engine = Engine.load(beat_bundle, backend=backend)
    assert engine.denoiser.beat_features == BEAT_FEATURES
    common = dict(seconds=1.0, seed=0, steps=3, gl_iters=2)
    default = render(engine, "generate", **common)
    again = render(engine, "generate", **common, tempo=Tempo(96.0))
    other = render(engine, "generate", **common, tempo=Tempo(140.0, 3, 4))
    assert default.info["bpm"] == 96.0 and other.info["bpm"] == 140.0
    np.testing.assert_array_equal(default.audio, again.audio)  # the default is the manifest's tempo in 4/4
    assert np.abs(default.audio - other.audio).max() > 1e-3  # the grid reaches the output


def test_a_bundle_without_conditioning_ignores_the_tempo(tiny_bundle):
    from engine.api import Engine, render
    from engine.regions import Tempo

    engine = Engine.load(tiny_bundle)
    assert engine.bundle.beat is None and engine.denoiser.beat_features == 0
    common = dict(seconds=0.5, seed=0, steps=2, gl_iters=1)
    plain, timed = render(engine, "generate", **common), render(engine, "generate", **common, tempo=Tempo(120.0))
    np.testing.assert_array_equal(plain.audio, timed.audio)
    assert timed.info["bpm"] is None


def test_manifest_beat_section_is_checked(beat_bundle, tmp_path):
    import shutil

    from engine.bundle import BundleError, load_bundle

    for bad, message in (({"features": 5, "default_bpm": 96.0}, "features"),
                         ({"features": 6, "default_bpm": 0}, "default_bpm"),
                         ({"features": 6, "tempo": 1}, "unknown"), (None, "no 'beat' field")):
        copy = Path(shutil.copytree(beat_bundle, tmp_path / f"b{len(list(tmp_path.iterdir()))}"))
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["beat"] = bad
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match=message):
            load_bundle(copy)
    assert BeatSettings.from_dict({"features": 6}).default_bpm == 100.0


def test_edits_follow_the_files_tempo_only_when_given(beat_bundle, tmp_path):
    """Inpaint and loop: no tempo, no grid (the audio's tempo is unknown); a tempo is followed, from where the
    edited window sits in the file."""
    import soundfile as sf

    from engine.api import Engine, render
    from engine.regions import BarsLength, Tempo

    engine = Engine.load(beat_bundle)
    path = tmp_path / "in.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.05, (44_100 * 2, 2)).astype(np.float32), 44_100)
    common = dict(source=path, regions=[(0.8, 1.2)], seed=0, steps=3, gl_iters=2)
    plain = render(engine, "inpaint", **common)
    timed = render(engine, "inpaint", **common, tempo=Tempo(120.0))
    assert np.abs(plain.samples.astype(np.float64) - timed.samples).max() > 0
    loop = render(engine, "loop", length=BarsLength(1), tempo=Tempo(120.0), seed=0, steps=3, gl_iters=2)
    assert loop.info["bpm"] == 120.0 and loop.audio.shape[-1] == 88_200
    free = render(engine, "loop", length=2.0, seed=0, steps=3, gl_iters=2)
    assert free.info["bpm"] is None


def test_outpaint_follows_the_inputs_tempo_into_both_extensions(beat_bundle, tmp_path):
    """Each outpaint window gets the grid of the file time it covers: the right extension continues the input's
    bars, the left one counts back from its start (negative times); no tempo, no grid."""
    import soundfile as sf

    from engine.api import Engine, render
    from engine.regions import Tempo

    engine = Engine.load(beat_bundle)
    path = tmp_path / "in.wav"
    sf.write(path, np.random.default_rng(1).normal(0, 0.05, (44_100 * 2, 2)).astype(np.float32), 44_100)
    asked = []
    with_beat = engine.denoiser_with_beat
    engine.denoiser_with_beat = lambda tempo, offset_s=0.0: (
        asked.append((tempo, round(offset_s, 4))) or with_beat(tempo, offset_s))
    common = dict(source=path, left=1.5, right=2.5, seed=0, steps=2, gl_iters=1, context_seconds=1.0,
                  chunk_seconds=1.0)
    timed = render(engine, "outpaint", **common, tempo=Tempo(120.0, origin_s=0.25))
    assert timed.info["bpm"] == 120.0
    # left: windows of a chunk (1 s, then the 0.5 s rest and the resampler's spare) + 0.5 s of look-ahead, ending
    # where the known audio begins; right: 1 s of the input's end as context, then the previous window's new audio
    assert [o for _, o in asked] == [-1.5, round(-1.0 - (0.5 + 64 / 44_100) - 0.5, 4), 1.0, 2.0, 3.0]
    assert all(t == Tempo(120.0, origin_s=0.25) for t, _ in asked)
    asked.clear()
    plain = render(engine, "outpaint", **common)
    assert plain.info["bpm"] is None and all(t is None for t, _ in asked)
    assert np.abs(plain.samples.astype(np.float64) - timed.samples).max() > 0
    n_left = 66_150  # the input's samples stay bit-identical between the extensions, with or without a grid
    np.testing.assert_array_equal(timed.samples[n_left:n_left + 88_200], plain.samples[n_left:n_left + 88_200])


def test_heldout_loss_scores_a_beat_model_with_the_crops_own_grids(tmp_path):
    """bench.heldout_loss: a beat-conditioned EMA is scored without a grid and with each crop's sidecar grid."""
    import csv

    import soundfile as sf

    from bench import heldout_loss
    from conftest import make_tiny_checkpoint
    from training.checkpoint import save_checkpoint
    from training.models import UNet, unet_preset

    ckpt = make_tiny_checkpoint("unet")
    cfg = dataclasses.replace(unet_preset("tiny"), beat_features=BEAT_FEATURES)
    torch.manual_seed(0)
    model = UNet(cfg)
    torch.nn.init.normal_(model.beat.weight, std=0.5)
    ckpt.update(model_config=cfg.to_dict(), model=model.state_dict(), ema=model.state_dict(), step=500)
    (tmp_path / "run" / "unet").mkdir(parents=True)
    save_checkpoint(ckpt, tmp_path / "run" / "unet" / "step-0000500.pt")
    heldout = tmp_path / "heldout"
    heldout.mkdir()
    t = np.arange(3 * 44_100) / 44_100
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5))
    sf.write(heldout / "clip.wav", np.stack([tone, 0.5 * tone], 1), 44_100)
    write_sidecar(heldout / "clip.wav", np.arange(0, 3, 0.5), np.arange(0, 3, 2.0))
    out = tmp_path / "heldout.csv"
    assert heldout_loss.main(["--run", str(tmp_path / "run"), "--heldout", str(heldout), "--frames", "16",
                              "--crops", "2", "--timesteps", "2", "--csv", str(out)]) == 0
    (step, raw, ema, gridded), = list(csv.reader(out.open()))[1:]
    assert float(raw) == float(ema)  # the same weights, no grid
    assert np.isfinite(float(gridded)) and float(gridded) != float(ema)  # the grid reaches the score


def test_a_window_cut_off_the_beat_gets_its_grid_from_the_notes(tmp_path):
    """A music21 window starts wherever the cut fell: tick 0 is no beat. Notes every beat from tick 240 (120 BPM,
    tpb 480: 0.25 s in), loud every fourth from the third: beats from 0.25 s, bars from 1.25 s."""
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))])
    now = 0
    for k in range(16):
        tick = 240 + 480 * k
        track.append(mido.Message("note_on", note=60, velocity=110 if k % 4 == 2 else 50, time=tick - now))
        track.append(mido.Message("note_off", note=60, time=100))
        now = tick + 100
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(tmp_path / "w1.mid")
    exact, _ = beats_from_midi(tmp_path / "w1.mid")
    beats, downbeats = beats_from_midi(tmp_path / "w1.mid", align_to_notes=True)
    assert exact[0] == 0.0
    np.testing.assert_allclose(beats[:3], [0.25, 0.75, 1.25], atol=1e-9)
    np.testing.assert_allclose(downbeats[:2], [1.25, 3.25], atol=1e-9)


def test_tempo_follow_measures_a_click_track():
    from bench.tempo_follow import clip_row

    cfg = SpectrogramConfig()
    rate, seconds, bpm = cfg.sample_rate, 8.0, 120.0
    audio = np.zeros((2, int(rate * seconds)), dtype=np.float32)
    clicks = np.arange(0.0, seconds, 60 / bpm / 2)  # eighth notes
    burst = np.random.default_rng(0).normal(0, 0.3, 400) * np.exp(-np.arange(400) / 80)
    for c in clicks:
        audio[:, int(c * rate):int(c * rate) + 400] += burst.astype(np.float32)
    on_grid = clip_row(audio, cfg, np.arange(0.0, seconds, 60 / bpm), bpm)
    assert abs(on_grid["tempo"] - bpm) < 3 and on_grid["ratio"] > 3 and on_grid["clarity"] > 0.5
    shifted = clip_row(audio, cfg, np.arange(0.0, seconds, 60 / bpm) + 60 / bpm / 4, bpm)
    assert shifted["ratio"] < 0.5  # the same clicks a sixteenth off the grid asked for


def test_quality_report_tempo_section(beat_bundle, tiny_bundle, tmp_path):
    from bench.quality_report import tempo_section
    from engine.api import Engine

    heldout = _beat_data(tmp_path / "heldout", bpm=90.0)
    section = tempo_section(Engine.load(beat_bundle), heldout, seconds=1.0, clips=2, tempos=(80.0,), seeds=(0,),
                            guidance=(3.0,))
    assert "| generated | requested BPM |" in section["generated"] and "| seed 0 | 80.0 |" in section["generated"]
    (scale, guided), = section["guided"]
    assert scale == 3.0 and "| generated, beat guidance 3 | requested BPM |" in guided and guided != section[
        "generated"].replace("| generated |", "| generated, beat guidance 3 |")
    assert section["real"].count("| clip") == 2 and "| 90.0 |" in section["real"]
    assert tempo_section(Engine.load(tiny_bundle), heldout, 2.0, 2) == {}  # a bundle that follows no tempo


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_beat_guidance_is_classifier_free_guidance_towards_the_grid(beat_bundle, backend):
    """w > 1: one U-Net batch of (grid, no grid) combined as no-grid + w (grid - no-grid), checked against separate
    calls of the same graph; w = 1 is the plain conditioned denoiser; the scale rides on the tempo."""
    from engine.api import Engine, render
    from engine.regions import Tempo

    engine = Engine.load(beat_bundle, backend=backend)
    x = torch.randn(2, 2, engine.bundle.spectrogram.n_mels, 16, generator=torch.Generator().manual_seed(1))
    x = x.to(engine.tensor_device)
    t = torch.tensor([700.0, 300.0])
    grid = torch.from_numpy(tempo_grid(16, 44_100 / 1024, 120.0))[None].to(engine.tensor_device)
    with_grid, without = engine.denoiser(x, t, beat=grid), engine.denoiser(x, t, beat=None)
    guided, bpm = engine.denoiser_with_beat(Tempo(120.0, guidance=3.0))
    torch.testing.assert_close(guided(x, t), without + 3.0 * (with_grid - without), atol=2e-4, rtol=1e-4)
    plain, _ = engine.denoiser_with_beat(Tempo(120.0, guidance=1.0))
    torch.testing.assert_close(plain(x, t), with_grid)
    assert bpm == 120.0
    common = dict(seconds=1.0, seed=0, steps=3, gl_iters=2)
    default = render(engine, "generate", **common, tempo=Tempo(96.0))
    same = render(engine, "generate", **common, tempo=Tempo(96.0, guidance=1.0))
    tight = render(engine, "generate", **common, tempo=Tempo(96.0, guidance=3.0))
    np.testing.assert_array_equal(default.audio, same.audio)  # the manifest's default is 1 (no guidance)
    assert np.abs(default.audio - tight.audio).max() > 1e-3


def test_beat_guidance_default_comes_from_the_manifest_and_bad_scales_are_named(beat_bundle, tmp_path):
    import shutil

    from engine.api import Engine, render
    from engine.bundle import BundleError, load_bundle
    from engine.regions import RegionError, Tempo

    copy = Path(shutil.copytree(beat_bundle, tmp_path / "guided"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["beat"]["guidance"] = 3.0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    common = dict(seconds=1.0, seed=0, steps=3, gl_iters=2)
    by_default = render(Engine.load(copy), "generate", **common)
    asked = render(Engine.load(beat_bundle), "generate", **common, tempo=Tempo(96.0, guidance=3.0))
    np.testing.assert_array_equal(by_default.audio, asked.audio)
    unguided = render(Engine.load(copy), "generate", **common, tempo=Tempo(96.0, guidance=1.0))
    assert np.abs(unguided.audio - by_default.audio).max() > 1e-3  # a request overrides the manifest

    # guidance_from: only the steps at t >= guidance_from * T are guided
    manifest["beat"]["guidance_from"] = 0.5
    (copy / "manifest.json").write_text(json.dumps(manifest))
    engine = Engine.load(copy)
    x = torch.randn(1, 2, engine.bundle.spectrogram.n_mels, 16, generator=torch.Generator().manual_seed(2))
    grid = torch.from_numpy(tempo_grid(16, 44_100 / 1024, 96.0))[None]
    denoise, _ = engine.denoiser_with_beat(engine.default_tempo(0))  # 96 BPM: this bundle has no tempo prior
    for t, guided in ((700.0, True), (499.0, False)):
        tt = torch.tensor([t])
        with_grid, without = engine.denoiser(x, tt, beat=grid), engine.denoiser(x, tt, beat=None)
        expected = without + 3.0 * (with_grid - without) if guided else with_grid
        torch.testing.assert_close(denoise(x, tt), expected, atol=2e-4, rtol=1e-4)
    for bad in (1.0, -0.1, "0.5"):
        manifest["beat"]["guidance_from"] = bad
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match="guidance_from"):
            load_bundle(copy)
    del manifest["beat"]["guidance_from"]
    for bad in (-1, 25, "3", True):
        manifest["beat"]["guidance"] = bad
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleError, match="guidance"):
            load_bundle(copy)
        if not isinstance(bad, (str, bool)):
            with pytest.raises(RegionError, match="beat guidance must be a number from 0 to 20"):
                Tempo(120.0, guidance=bad)


def test_beat_guidance_from_the_command_line_and_the_export(beat_bundle, tiny_run_dir, tmp_path, capsys):
    import soundfile as sf

    from engine.cli.main import main
    from export.cli import main as export_main

    base = ["generate", "--bundle", str(beat_bundle), "--seconds", "0.5", "--seed", "1", "--steps", "2",
            "--gl-iters", "1"]
    assert main([*base, "--beat-guidance", "3", "--out", str(tmp_path / "x.wav")]) == 2
    assert "--beat-guidance needs --bpm" in capsys.readouterr().err
    assert main([*base, "--bpm", "96", "--beat-guidance", "30", "--out", str(tmp_path / "x.wav")]) == 2
    assert "beat guidance must be a number from 0 to 20" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
    for name, extra in (("plain.wav", []), ("tight.wav", ["--beat-guidance", "3"])):
        assert main([*base, "--bpm", "96", *extra, "--out", str(tmp_path / name)]) == 0
    plain, tight = (sf.read(tmp_path / n)[0] for n in ("plain.wav", "tight.wav"))
    assert np.abs(plain - tight).max() > 1e-3

    assert export_main([str(tiny_run_dir), str(tmp_path / "b"), "--beat-guidance", "2"]) == 2
    assert "needs a beat-conditioned U-Net" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()

    from conftest import make_tiny_checkpoint
    from export.bundle_writer import ExportOptions, write_bundle
    from training.models import UNet, unet_preset
    ckpt = make_tiny_checkpoint("unet")
    cfg = dataclasses.replace(unet_preset("tiny"), beat_features=BEAT_FEATURES)
    ckpt.update(model_config=cfg.to_dict(), model=UNet(cfg).state_dict(), ema=None)
    guided = write_bundle(ckpt, make_tiny_checkpoint("vocoder", 1), tmp_path / "guided",
                          ExportOptions(name="guided", beat_guidance=2.5, beat_guidance_from=0.6))
    beat = json.loads((guided / "manifest.json").read_text())["beat"]
    assert beat["guidance"] == 2.5 and beat["guidance_from"] == 0.6


def test_quality_report_judges_beat_guidance_beside_the_defaults(beat_bundle, tiny_bundle, tmp_path, capsys):
    """The whole report on real tiny graphs: the guided set is judged beside the bundle's defaults, timed, and
    asked for tempos, and the command that made the report is written into it."""
    from bench.quality_report import main

    heldout = write_clips(tmp_path / "heldout", count=4, seconds=4.5)
    for wav in heldout.glob("*.wav"):
        beats = np.arange(0, 5.0, 60 / 90.0)
        write_sidecar(wav, beats, beats[::4])
    more = tmp_path / "more"
    more.mkdir()
    for i in range(8):
        sf.write(more / f"other{i}.wav", music_clip(int(4.5 * 44100), seed=100 + i, noise=0.005), 44100)
    corpus = tmp_path / "corpus"  # the model's training data: 3 train pieces, none of them in the reference
    (corpus / "train").mkdir(parents=True)
    pieces = []
    for i in range(3):
        sf.write(corpus / "train" / f"pop-{i}.wav", music_clip(int(4.5 * 44100), seed=200 + i), 44100)
        pieces.append({"id": f"pop-{i}", "wav": f"train/pop-{i}.wav", "split": "train", "midi_sha256": f"h{i}",
                       "work": f"pop-{i}", "source": "procedural"})
    (corpus / "corpus.json").write_text(json.dumps({"pieces": pieces}))
    out = tmp_path / "report" / "REPORT.md"
    assert main(["--bundle", str(beat_bundle), "--previous", str(tiny_bundle), "--heldout", str(heldout),
                 "--reference", str(more), "--training-corpus", str(corpus / "corpus.json"), "--out", str(out),
                 "--clips", "4", "--seconds", "4", "--seeds", "0", "1", "--region-clips", "0",
                 "--beat-guidance", "2.5"]) == 0
    text = out.read_text()
    assert f"--reference {more} --training-corpus" in text
    assert "--clips 4 --region-clips 0 --seeds 0 1 --beat-guidance 2.5`" in text
    calibrated = text.split("## Calibrated gates")[1].split("## Musicality")[0]
    assert "Reference: 12 real clips" in calibrated and "minus 0 pieces of the training corpus" in calibrated
    assert "2 reference clips against 4 others fail at least one of them" in calibrated
    assert "The issue's gates on the model's own training data: 2 clips drawn from the 3 train clips" in calibrated
    assert "All of them as one set: onset_rate " in calibrated
    assert "| onset_rate |" in calibrated and "| **all calibrated gates** |" in calibrated
    assert "Fréchet distance (log-mel statistics) to the whole reference: new " in calibrated
    styles = text.split("## By style")[1].split("## Musicality")[0]
    assert "| reference | all | 12 |" in styles and "| new: generated | all | 2 |" in styles
    assert "| previous: generated | all | 2 |" in styles and "| training split | all | 3 |" in styles
    assert "new: beat guidance 2.5" in text.split("## Musicality")[1].split("\n\n")[2]  # a column of the table
    assert "| generated, beat guidance 2.5 | requested BPM |" in text
    assert "new: beat guidance 2.5 " in text.split("Render time per 10 s clip")[1].splitlines()[0]
    report = json.loads((out.parent / "report.json").read_text())
    assert "new: beat guidance 2.5" in report["musicality"]["rows"]
    assert report["calibrated"]["reference_clips"] == 12 and set(report["calibrated"]["gates"]) == {"new", "previous"}
    assert report["calibrated"]["corpus_false_failure"]["corpus_clips"] == 3
    from bench.quality_report import tempo_label  # the pictures' titles name each seed's tempo
    from engine.api import Engine
    tempo = Engine.load(beat_bundle).default_tempo(0)
    assert tempo_label(Engine.load(beat_bundle), 0) == f" ({tempo.bpm:g} BPM, {tempo.numerator}/4)"
    assert tempo_label(Engine.load(tiny_bundle), 0) == ""
