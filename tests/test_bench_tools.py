"""The benchmark tools keep working: row parsing, and the profiler's stage accounting on a real (tiny) render.
Timings themselves are not asserted (speed goals live in bench/, not in tests)."""
import pytest

from bench import bench_render, region_quality, sweep_steps, torch_unet


def test_bench_render_rows():
    assert bench_render.parse_row("fast-190") == ("fast", 190.0)
    assert bench_render.parse_row("paperours-10.379") == ("paperours", 10.379)
    for bad in ("slow-10", "fast-0", "fast-200", "fast-x", "fast"):
        with pytest.raises(ValueError, match="bad row"):
            bench_render.parse_row(bad)
    assert bench_render.row_settings("paper", 15, 80, "peaks", "dpmpp")["phase"] == "torchaudio"
    assert bench_render.row_settings("fast", 15, 80, "peaks", "dpmpp")["steps"] == 15


def test_sweep_rows():
    assert sweep_steps.parse_row("ddim-50") == ("ddim", 2, 50, "linear")
    assert sweep_steps.parse_row("dpmpp3-15") == ("dpmpp", 3, 15, "logsnr")
    assert sweep_steps.parse_row("dpmpp2lin-15") == ("dpmpp", 2, 15, "linear")
    for bad in ("dpmpp4-15", "dpmpp2log-15", "ddimlin-15"):
        with pytest.raises(ValueError, match="bad row"):
            sweep_steps.parse_row(bad)


def test_region_rows():
    assert region_quality.parse_row("default") == {}
    assert region_quality.parse_row("ddim-jump-50") == {"sampler": "ddim", "jumps": 1, "steps": 50}
    assert region_quality.parse_row("repaint-50") == {"method": "repaint", "steps": 50}
    with pytest.raises(ValueError, match="bad row"):
        region_quality.parse_row("ddim-3-jumps")


def test_torch_unet_times_each_precision(capsys):
    assert torch_unet.main(["--preset", "tiny", "--frames", "64", "--no-onnx", "--calls", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 64 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["torch fp32", "torch bf16"]
    assert float(rows[1].split("|")[5]) < 0.05  # bf16 output within a few percent of fp32


def test_profile_sums_a_real_render_into_stages(tiny_bundle, tmp_path):
    pytest.importorskip("pyinstrument")
    from bench.profile_render import profile_one
    from engine.api import Engine

    engine = Engine.load(tiny_bundle, device="cpu", threads=1)
    # 24 steps: enough U-Net time (tiny model, ~1 ms a call) for the 2 ms sampler to see it on a busy machine
    result = profile_one(engine, 2.0, {"steps": 24, "gl_iters": 8}, 48_000, tmp_path, top=5)
    stages = result["stages"]
    assert stages["U-Net (onnxruntime)"] > 0 and stages["Griffin-Lim iterations (ours)"] > 0
    assert "write file" in stages and "resample (soxr)" in stages
    assert sum(stages.values()) == pytest.approx(result["wall"], rel=0.05)
    assert all(v >= 0 for v in stages.values())
    assert (tmp_path / "profile-2s.wav").is_file() and len(result["hot"]) <= 5


def test_bench_render_row_on_the_torch_backend(program_bundle, tmp_path, capsys):
    import json

    report = tmp_path / "rows.jsonl"
    assert bench_render.main(["--bundle", str(program_bundle), "--rows", "fast-0.5", "--backend", "torch",
                              "--steps", "2", "--gl-iters", "2", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "engine: device cpu, backend torch" in out and "fast-0.5" in out and "RTF" in out
    row = json.loads(report.read_text())
    assert (row["backend"], row["precision"], row["peak_gpu_mb"]) == ("torch", "fp32", None)


def test_scaler_music_reads_carried_audio(tmp_path):
    """The GPU run fits the benchmark bundle's scalers on carried audio (the device has no FluidSynth)."""
    import numpy as np
    import soundfile as sf

    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4410)).astype(np.float32)
    np.save(tmp_path / "m.npy", audio)
    assert np.array_equal(bench_render.scaler_music(44100, tmp_path / "m.npy"), audio)
    sf.write(tmp_path / "m.wav", audio.T, 44100, subtype="FLOAT")
    assert np.allclose(bench_render.scaler_music(44100, tmp_path / "m.wav"), audio)
    sf.write(tmp_path / "m48.wav", audio.T, 48000, subtype="FLOAT")
    with pytest.raises(ValueError, match="48000 Hz; the scalers need 44100 Hz"):
        bench_render.scaler_music(44100, tmp_path / "m48.wav")
    np.save(tmp_path / "mono.npy", audio[:1])
    with pytest.raises(ValueError, match=r"expected stereo audio \[2, samples\]"):
        bench_render.scaler_music(44100, tmp_path / "mono.npy")


def test_bench_render_repeats_report_medians():
    def run(wall, rss, sc):
        return {"wall_s": wall, "rtf": wall / 10, "sampling_s": wall - 1, "decode_s": 1.0, "load_avg": 0.5,
                "peak_rss_mb": rss, "peak_gpu_mb": None, "spectral_convergence": sc}
    merged = bench_render._median_run([run(3.0, 900, 0.03), run(2.0, 950, 0.03), run(9.0, 920, 0.03)])
    assert merged["wall_s"] == 3.0 and merged["sampling_s"] == 2.0 and merged["runs"] == 3
    assert merged["peak_rss_mb"] == 950 and merged["peak_gpu_mb"] is None
    assert bench_render._median_run([run(2.0, 900, 0.03), run(4.0, 900, 0.03)])["wall_s"] == 3.0


def test_vocoder_compare_table_on_real_graphs(tiny_bundle, tmp_path, capsys):
    """Two bundles' vocoders and the pseudo-inverse, each scored against the true STFT of the held-out clips."""
    import numpy as np
    import soundfile as sf

    from bench import vocoder_compare

    heldout = tmp_path / "heldout"
    heldout.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    for i in range(2):
        tone = 0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t) * np.exp(-3 * (t % 0.5))
        sf.write(heldout / f"clip{i}.wav", np.stack([tone, 0.5 * tone], 1) + 0.01 * rng.standard_normal((44100, 2)),
                 44100)
    png = tmp_path / "vocoders.png"
    assert vocoder_compare.main(["--bundles", str(tiny_bundle), "--heldout", str(heldout), "--clips", "2",
                                 "--seconds", "0.5", "--gl-iters", "4", "--png", str(png)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| mel pseudo-inverse (paper baseline)", f"| vocoder: {tiny_bundle}"]
    for row in rows[1:]:
        cells = row.strip("| ").split(" | ")
        assert all(np.isfinite(float(c)) and float(c) >= 0 for c in cells[1:4])
        assert len(cells[4:]) == 8 and all(np.isfinite(float(c)) for c in cells[4:])  # one level per octave band
    # the pseudo-inverse of a clean tone mel is close to the truth; a random-weight vocoder is not
    assert float(rows[1].split(" | ")[1]) < float(rows[2].split(" | ")[1])
    assert png.stat().st_size > 0
    with pytest.raises(SystemExit):
        vocoder_compare.main(["--bundles", str(tiny_bundle), str(tiny_bundle), "--heldout", str(heldout)])
    with pytest.raises(SystemExit):
        vocoder_compare.main(["--bundles", str(tmp_path / "missing"), "--heldout", str(heldout)])
    assert "bundle not found" in capsys.readouterr().err


def test_heldout_loss_scores_the_newest_checkpoint_too(tmp_path, capsys):
    """--every N picks every N-th periodic checkpoint and always the newest (the one a bundle is made from)."""
    import csv

    import numpy as np
    import soundfile as sf

    from bench import heldout_loss
    from conftest import make_tiny_checkpoint
    from training.checkpoint import save_checkpoint

    (tmp_path / "run" / "unet").mkdir(parents=True)
    for step in (500, 1000, 1500, 2000):
        save_checkpoint(dict(make_tiny_checkpoint("unet"), step=step), tmp_path / "run" / "unet" / f"step-{step:07d}.pt")
    heldout = tmp_path / "heldout"
    heldout.mkdir()
    t = np.arange(3 * 44100) / 44100
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5))
    sf.write(heldout / "clip.wav", np.stack([tone, 0.5 * tone], 1), 44100)
    out = tmp_path / "heldout.csv"
    assert heldout_loss.main(["--run", str(tmp_path / "run"), "--heldout", str(heldout), "--every", "2",
                              "--frames", "16", "--crops", "2", "--timesteps", "2", "--csv", str(out)]) == 0
    rows = list(csv.reader(out.open()))[1:]
    assert [int(r[0]) for r in rows] == [500, 1500, 2000]
    assert all(np.isfinite(float(v)) and float(v) > 0 for r in rows for v in r[1:3])
    assert all(np.isnan(float(r[3])) for r in rows)  # no beat conditioning: no gridded score
    # what it was scored on, beside it, and the report names it
    import json

    from bench.quality_report import training_section
    from bench.report_markdown import training_lines
    assert json.loads((tmp_path / "heldout.csv.json").read_text()) == {
        "heldout": str(heldout), "crops": 2, "timesteps": 2, "frames": 16}
    (tmp_path / "heldout.csv").rename(tmp_path / "run" / "heldout.csv")
    (tmp_path / "heldout.csv.json").rename(tmp_path / "run" / "heldout.csv.json")
    text = "\n".join(training_lines(training_section(tmp_path / "run")))
    assert f"2 crops of 16 frames from `{heldout}` x 2 timesteps" in text and "| 1500 |" in text
    assert not list(tmp_path.glob("*.tmp"))
