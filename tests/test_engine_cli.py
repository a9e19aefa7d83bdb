"""`msanii-render generate` end to end: a subprocess for the real entry point, in-process main() for the rest
(each interpreter start costs seconds of torch/diffusers imports on this machine)."""
import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from engine.cli import main


def test_subprocess_48k_24bit(tiny_bundle, tmp_path):
    out = tmp_path / "take.wav"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "generate", "--bundle", str(tiny_bundle),
                           "--seconds", "1.25", "--seed", "9", "--steps", "3", "--gl-iters", "4", "--rate", "48000",
                           "--bit-depth", "24", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype, info.format, info.frames) == (48000, 2, "PCM_24", "WAV",
                                                                                        60000)
    report = json.loads(proc.stdout)
    assert report["seed"] == 9 and report["sample_rate"] == 48000 and report["path"] == str(out)
    assert "wrote" in proc.stderr and "generate:" in proc.stderr  # summary line and progress bar


def test_flac_16bit(tiny_bundle, tmp_path):
    flac = tmp_path / "take.flac"
    assert main(["generate", "--bundle", str(tiny_bundle), "--seconds", "0.5", "--seed", "9", "--steps", "2",
                 "--gl-iters", "2", "--bit-depth", "16", "-o", str(flac), "--quiet"]) == 0  # -o: the usual short form
    info = sf.info(str(flac))
    assert (info.samplerate, info.subtype, info.format, info.frames) == (44100, "PCM_16", "FLAC", 22050)


def test_no_overwrite_and_default_name(tiny_bundle, tmp_path, monkeypatch):
    out = tmp_path / "mine.wav"
    out.write_bytes(b"precious")
    base = ["generate", "--bundle", str(tiny_bundle), "--seconds", "0.3", "--steps", "2", "--gl-iters", "2",
            "--quiet"]
    assert main(base + ["--out", str(out)]) == 2 and out.read_bytes() == b"precious"
    assert main(base + ["--out", str(out), "--overwrite", "--bit-depth", "32f"]) == 0
    assert sf.info(str(out)).subtype == "FLOAT"
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # no --out: a fresh name each time, nothing replaced
        assert main(base + ["--seed", "4"]) == 0
    a, _ = sf.read(str(tmp_path / "msanii-generate-seed4.wav"))
    b, _ = sf.read(str(tmp_path / "msanii-generate-seed4-2.wav"))
    assert np.array_equal(a, b)  # same seed, same settings, same file content


def test_errors_are_one_line(tiny_bundle, tmp_path, capsys):
    cases = [
        (["--bundle", str(tmp_path / "none"), "--seconds", "1"], "bundle not found"),
        (["--bundle", str(tiny_bundle), "--seconds", "-1"], "seconds must be a positive"),
        (["--bundle", str(tiny_bundle), "--seconds", "999"], "too long"),
        (["--bundle", str(tiny_bundle), "--seconds", "1", "--steps", "0"], "steps must be"),
        (["--bundle", str(tiny_bundle), "--seconds", "1", "--out", str(tmp_path / "x.flac"), "--bit-depth", "32f"],
         "FLAC stores integers"),
        (["--bundle", str(tiny_bundle), "--seconds", "1", "--out", str(tmp_path / "x.ogg")],
         "unsupported output format"),
        (["--bundle", str(tiny_bundle), "--seconds", "1", "--out", str(tmp_path / "no" / "x.wav")], "output folder"),
        (["--bundle", str(tiny_bundle), "--seconds", "1", "--rate", "7"], "--rate must be"),
    ]
    for args, message in cases:
        assert main(["generate", *args]) == 2, args  # the console script returns this as the exit code
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("msanii-render: error:") and message in lines[0], err
    assert not list(tmp_path.glob("*.wav"))



def test_os_errors_are_one_line(tiny_bundle, tmp_path, capsys):
    folder = tmp_path / "take.wav"  # a folder where the file should go: replacing it fails in the OS
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert main(["generate", "--bundle", str(tiny_bundle), "--seconds", "0.2", "--steps", "1", "--gl-iters", "1",
                 "--quiet", "--out", str(folder), "--overwrite"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("msanii-render: error:")
    assert (folder / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]  # no temp file left behind
