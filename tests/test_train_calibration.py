"""The vocoder's output bias starts at the data's mean log-magnitude per bin (a measured speed-up on CPU runs)."""
import torch

from engine.dsp import SpectrogramConfig, log_mel, samples_for_frames, stft_magnitude
from training.config import train_preset
from training.data.audio_folder import AudioFolderDataset
from training.losses import vocoder_loss
from training.trainer import CALIBRATION_STEP, Trainer, build_model
from train_helpers import write_clips


def test_vocoder_starts_at_the_data_level(tmp_path):
    cfg = train_preset("vocoder", "tiny")
    crop = samples_for_frames(cfg.crop_frames, SpectrogramConfig())
    trainer = Trainer(cfg, AudioFolderDataset(write_clips(tmp_path / "data", count=2, seconds=1.0), crop))
    audio, _ = trainer.draw_batch(CALIBRATION_STEP)
    expected = torch.log(stft_magnitude(audio, trainer.spectrogram) + 1e-5).mean(dim=(0, 1, 3))
    torch.testing.assert_close(trainer.model.detokenize.proj.bias.detach(), expected)

    # ...a better start than the plain initialisation, measured on the first training batch
    plain = build_model(cfg).train()
    batch, _ = trainer.draw_batch(0)
    target = stft_magnitude(batch, trainer.spectrogram)
    x = trainer.scaler(log_mel(batch, trainer.spectrogram))
    with torch.no_grad():
        calibrated_loss, _ = vocoder_loss(trainer.model(x), target)
        plain_loss, _ = vocoder_loss(plain(x), target)
    assert float(calibrated_loss) < 0.7 * float(plain_loss)
