"""`msanii-train unet|vocoder`: clear one-line errors (exit 2), a real run and resume, Ctrl-C via a real SIGINT."""
from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time

import pytest

from training.checkpoint import load_checkpoint
from training.cli import main

from train_helpers import write_clips


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("clips"), count=2, seconds=1.0)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("msanii-train: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def steps_logged(kind_dir) -> list[int]:
    with open(kind_dir / "losses.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def steps_column(kind_dir, name: str) -> list[str]:
    with open(kind_dir / "losses.csv", newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


@pytest.mark.parametrize("case, expected", [
    ("missing", "does not exist"),
    ("empty", "contains no audio files"),
    ("corrupt", "no usable audio"),
])
def test_bad_data_is_a_one_line_error(tmp_path, capsys, case, expected):
    data = tmp_path / "data"
    if case != "missing":
        data.mkdir()
    if case == "corrupt":
        (data / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
        (data / "also.flac").write_bytes(b"\x00" * 100)
    assert main(["unet", "--data", str(data), "--preset", "tiny", "--out", str(tmp_path / "run")]) == 2
    assert expected in error_line(capsys)
    assert not (tmp_path / "run" / "unet").exists() or not any((tmp_path / "run" / "unet").iterdir())


@pytest.mark.parametrize("args, expected", [
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--preset", "tiny", "--crop-frames", "15"], "not a multiple of 2"),
    (["--preset", "tiny", "--steps", "0"], "steps must be >= 1"),
    (["--preset", "tiny", "--resume"], "nothing to resume"),
    (["--preset", "tiny", "--device", "tpu"], "unknown device"),
    (["--preset", "tiny", "--sc-weight", "0"], "sc-weight must be > 0"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, data_dir, args, expected):
    kind = "vocoder" if "--sc-weight" in args else "unet"
    assert main([kind, "--data", str(data_dir), "--out", str(tmp_path / "run"), *args]) == 2
    assert expected in error_line(capsys)


def test_data_is_required(tmp_path, capsys):
    assert main(["vocoder", "--out", str(tmp_path / "run")]) == 2
    assert "--data DIR is required" in error_line(capsys)


def test_run_refuses_overwrite_and_resumes(tmp_path, capsys, data_dir):
    run = tmp_path / "run"
    base = ["vocoder", "--data", str(data_dir), "--preset", "tiny", "--out", str(run), "--no-progress"]
    assert main([*base, "--steps", "3"]) == 0
    kind_dir = run / "vocoder"
    assert steps_logged(kind_dir) == [1, 2, 3]
    before = (kind_dir / "last.pt").read_bytes()
    capsys.readouterr()

    assert main([*base, "--steps", "3"]) == 2  # never overwrite a run silently
    assert "already holds a run" in error_line(capsys)
    assert (kind_dir / "last.pt").read_bytes() == before

    assert main([*base, "--steps", "5", "--resume", "--batch-size", "7"]) == 2
    assert "--batch-size 7 differs" in error_line(capsys)

    # --data and --preset default to the run's own on resume.
    assert main(["vocoder", "--out", str(run), "--resume", "--steps", "5", "--no-progress"]) == 0
    assert steps_logged(kind_dir) == [1, 2, 3, 4, 5]
    assert load_checkpoint(kind_dir / "last.pt", kind="vocoder")["step"] == 5
    # The spectral-convergence weight may change on resume (fine-tuning) and is recorded in the checkpoint.
    assert main(["vocoder", "--out", str(run), "--resume", "--steps", "6", "--sc-weight", "4", "--no-progress"]) == 0
    assert load_checkpoint(kind_dir / "last.pt", kind="vocoder")["train_config"]["sc_weight"] == 4.0
    # So may the learning rate; the new one is used from the next step (here still in warm-up: scaled alike).
    lr_before = float(steps_column(kind_dir, "lr")[-1])
    assert main(["vocoder", "--out", str(run), "--resume", "--steps", "7", "--lr", "1e-5", "--no-progress"]) == 0
    resumed = load_checkpoint(kind_dir / "last.pt", kind="vocoder")
    assert resumed["train_config"]["optim"]["lr"] == 1e-5
    assert float(steps_column(kind_dir, "lr")[-1]) < lr_before / 10
    capsys.readouterr()
    assert main(["unet", "--data", str(data_dir), "--preset", "tiny", "--out", str(run), "--steps", "1",
                 "--no-progress"]) == 0  # the U-Net gets its own folder in the same run


def test_ctrl_c_saves_a_checkpoint_and_exits_0(tmp_path, data_dir):
    run = tmp_path / "run"
    kind_dir = run / "unet"
    cmd = [sys.executable, "-m", "training.cli", "unet", "--data", str(data_dir), "--preset", "tiny",
           "--out", str(run), "--steps", "100000", "--checkpoint-every", "100000", "--no-progress", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if (kind_dir / "losses.csv").exists() and len(steps_logged(kind_dir)) >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGINT" in err and "interrupted at step" in err
    saved = load_checkpoint(kind_dir / "last.pt", kind="unet")
    logged = steps_logged(kind_dir)
    assert saved["step"] == logged[-1] >= 3 and logged == list(range(1, saved["step"] + 1))
    assert not [p for p in kind_dir.iterdir() if p.name.startswith(".")]  # no temporary files left

    assert main(["unet", "--out", str(run), "--resume", "--steps", str(saved["step"] + 2), "--no-progress"]) == 0
    assert steps_logged(kind_dir) == list(range(1, saved["step"] + 3))


def test_corrupt_file_among_good_ones_is_skipped_with_a_warning(tmp_path, capsys):
    data = write_clips(tmp_path / "data", count=1, seconds=1.0)
    (data / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert main(["vocoder", "--data", str(data), "--preset", "tiny", "--out", str(tmp_path / "run"),
                 "--steps", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("msanii-train: warning:")]
    assert len(warnings) == 1 and "broken.wav" in warnings[0], err
    assert load_checkpoint(tmp_path / "run" / "vocoder" / "last.pt")["data"]["files"] == 1


def test_ema_start_0_averages_from_the_first_step_and_is_fixed_on_resume(tmp_path, capsys, data_dir):
    import torch

    run = tmp_path / "run"
    base = ["unet", "--data", str(data_dir), "--preset", "tiny", "--out", str(run), "--no-progress"]
    assert main([*base, "--steps", "10", "--ema-start", "0"]) == 0
    ckpt = load_checkpoint(run / "unet" / "last.pt", kind="unet")
    assert ckpt["train_config"]["ema"]["start_step"] == 0
    # with the paper's default the EMA is still a plain copy at step 10; averaged from step 0 it lags the weights
    lagging = [name for name, w in ckpt["model"].items()
               if w.is_floating_point() and not torch.equal(w, ckpt["ema"][name])]
    assert lagging
    assert main([*base, "--steps", "12", "--resume", "--ema-start", "5"]) == 2
    assert "--ema-start 5 differs" in error_line(capsys)
    assert main([*base, "--steps", "1", "--ema-start", "-1", "--out", str(tmp_path / "r2")]) == 2
    assert "--ema-start must be >= 0" in error_line(capsys)


def test_oversample_is_recorded_kept_on_resume_and_checked(tmp_path, capsys):
    """--oversample GLOB=FACTOR: recorded in the checkpoint, kept by a plain resume, replaced by a given one; a
    malformed value or a glob matching no file is a one-line error before any training."""
    data = write_clips(tmp_path / "clips", count=2, seconds=1.0)
    run = tmp_path / "run"
    base = ["vocoder", "--data", str(data), "--preset", "tiny", "--out", str(run), "--no-progress"]
    assert main([*base, "--steps", "2", "--oversample", "clip0*=3"]) == 0
    kind_dir = run / "vocoder"
    assert load_checkpoint(kind_dir / "last.pt", kind="vocoder")["train_config"]["oversample"] == {"clip0*": 3.0}
    assert "oversampled: clip0*=3 (75% of draws)" in capsys.readouterr().err
    assert main(["vocoder", "--out", str(run), "--resume", "--steps", "3", "--no-progress"]) == 0
    assert load_checkpoint(kind_dir / "last.pt", kind="vocoder")["train_config"]["oversample"] == {"clip0*": 3.0}
    assert main(["vocoder", "--out", str(run), "--resume", "--steps", "4", "--oversample", "clip1*=2",
                 "--no-progress"]) == 0
    assert load_checkpoint(kind_dir / "last.pt", kind="vocoder")["train_config"]["oversample"] == {"clip1*": 2.0}
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:  # argparse: a value that is not GLOB=FACTOR
        main([*base, "--steps", "1", "--oversample", "clip0*"])
    assert exit_info.value.code == 2 and "expected GLOB=FACTOR" in capsys.readouterr().err
    assert main([*base[:-3], "--out", str(tmp_path / "r2"), "--steps", "1", "--oversample", "m21-*=2"]) == 2
    assert "--oversample: no file in" in error_line(capsys)
    assert not (tmp_path / "r2" / "vocoder" / "last.pt").exists()
