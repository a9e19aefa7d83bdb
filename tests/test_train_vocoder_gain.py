"""`msanii-train calibrate-vocoder`: the vocoder's output energy matched to the data's per STFT bin, in a copy."""
from __future__ import annotations

import numpy as np
import torch

from engine.dsp import LearnedScaler, SpectrogramConfig, samples_for_frames
from training.checkpoint import LAST, load_checkpoint
from training.cli import main
from training.data.audio_folder import AudioFolderDataset
from training.models import Vocoder, VocoderConfig
from training.vocoder_gain import CALIBRATION_SEED, MAX_GAIN_DB, measure_gain

from train_helpers import write_clips


def loaded(checkpoint):
    vocoder = Vocoder(VocoderConfig.from_dict(checkpoint["model_config"])).eval()
    vocoder.load_state_dict(checkpoint["model"])
    scaler = LearnedScaler()
    scaler.load_state_dict(checkpoint["scaler"])
    return vocoder, scaler.eval()


def test_calibration_matches_energy_per_bin_and_keeps_the_run(tmp_path, capsys):
    data = write_clips(tmp_path / "clips", count=2, seconds=1.0)
    run = tmp_path / "run"
    assert main(["vocoder", "--data", str(data), "--preset", "tiny", "--out", str(run), "--steps", "3",
                 "--no-progress"]) == 0
    last_bytes = (run / "vocoder" / LAST).read_bytes()
    assert main(["calibrate-vocoder", "--out", str(run), "--batches", "4"]) == 0
    assert "mean gain" in capsys.readouterr().err
    assert (run / "vocoder" / LAST).read_bytes() == last_bytes  # the run itself is untouched
    before = load_checkpoint(run / "vocoder" / LAST, "vocoder")
    after = load_checkpoint(run / "vocoder" / "calibrated.pt", "vocoder")
    assert after["calibration"]["batches"] == 4 and not after["optimizer"]

    spectrogram = SpectrogramConfig.from_dict(before["spectrogram"])
    dataset = AudioFolderDataset(data, samples_for_frames(before["train_config"]["crop_frames"], spectrogram))
    rng = np.random.default_rng(CALIBRATION_SEED)
    batches = [torch.stack([dataset.sample_crop(rng) for _ in range(8)]).float() for _ in range(4)]
    gain_before = measure_gain(*loaded(before), batches, spectrogram)
    gain_after = measure_gain(*loaded(after), batches, spectrogram)
    limit = MAX_GAIN_DB / 20 * np.log(10)
    unclamped = gain_before.abs() < limit - 1e-4
    assert unclamped.any() and gain_before[unclamped].abs().max() > 0.01  # there was something to correct
    assert gain_after[unclamped].abs().max() < 1e-3  # each bin now carries the data's energy

    assert main(["calibrate-vocoder", "--out", str(run)]) == 2  # never overwritten
    assert "exists (calibrated at step 3; last.pt is at step 3)" in capsys.readouterr().err
    # A run resumed after its calibration: the refusal says the copy is of an older step.
    assert main(["vocoder", "--out", str(run), "--resume", "--steps", "5", "--no-progress"]) == 0
    assert main(["calibrate-vocoder", "--out", str(run)]) == 2
    assert "calibrated at step 3; last.pt is at step 5" in capsys.readouterr().err
