from training.models.config import UNetConfig, VocoderConfig, unet_preset, vocoder_preset
from training.models.unet import UNet
from training.models.vocoder import Vocoder

__all__ = ["UNetConfig", "VocoderConfig", "unet_preset", "vocoder_preset", "UNet", "Vocoder"]
