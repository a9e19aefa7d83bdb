"""bridge.handoff on real files: stacking and cutting a DAW's per-channel files bit for bit in their own format,
the MSPCM1 copy (resampled to the DAW's rate), and a clear error naming the problem for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bridge.handoff import HandoffError, prepare_input, read_pcm, write_pcm
from task_audio import music


def test_stack_and_cut_keep_24_bit_samples_exactly(tmp_path):
    audio = music(1.0, 48000, 2, seed=1)
    for c, name in enumerate(("t%L.wav", "t%R.wav")):
        sf.write(str(tmp_path / name), audio[:, c], 48000, subtype="PCM_24")
    cut = prepare_input([tmp_path / "t%L.wav", tmp_path / "t%R.wav"], tmp_path / "work", (1000, 9000), "fix")
    info = sf.info(str(cut))
    assert (info.channels, info.frames, info.samplerate, info.subtype) == (2, 8000, 48000, "PCM_24")
    whole = np.stack([sf.read(str(tmp_path / n), dtype="int32")[0] for n in ("t%L.wav", "t%R.wav")], axis=1)
    assert np.array_equal(sf.read(str(cut), dtype="int32")[0], whole[1000:9000])
    again = prepare_input([tmp_path / "t%L.wav"], tmp_path / "work", (0, 10), "fix")
    assert again != cut and cut.exists()  # a second cut gets its own name; nothing is replaced
    assert prepare_input([tmp_path / "t%L.wav"], tmp_path / "work") == (tmp_path / "t%L.wav").resolve()


def test_bad_inputs_are_named(tmp_path):
    sf.write(str(tmp_path / "a.wav"), music(0.5, 44100, 1), 44100)
    sf.write(str(tmp_path / "b.wav"), music(0.5, 48000, 1), 48000)
    sf.write(str(tmp_path / "c.wav"), music(0.25, 44100, 1), 44100)
    with pytest.raises(HandoffError, match=r"different sample rates \[44100, 48000\]"):
        prepare_input([tmp_path / "a.wav", tmp_path / "b.wav"], tmp_path / "w")
    with pytest.raises(HandoffError, match="differ in length: a.wav 22050, c.wav 11025"):
        prepare_input([tmp_path / "a.wav", tmp_path / "c.wav"], tmp_path / "w")
    with pytest.raises(HandoffError, match=r"span 0:99999 \(samples\) is not inside the input's 0:22050"):
        prepare_input([tmp_path / "a.wav"], tmp_path / "w", (0, 99999))
    with pytest.raises(HandoffError, match="input file not found: .*missing.wav"):
        prepare_input([tmp_path / "missing.wav"], tmp_path / "w")


def test_pcm_copy_resamples_and_never_replaces(tmp_path):
    sf.write(str(tmp_path / "g.wav"), music(1.0, 44100, 2), 44100, subtype="PCM_24")
    same, rate = read_pcm(write_pcm(tmp_path / "g.wav", tmp_path / "g.pcm"))
    assert rate == 44100 and np.array_equal(same, sf.read(str(tmp_path / "g.wav"), dtype="float32")[0].T)
    up, rate = read_pcm(write_pcm(tmp_path / "g.wav", tmp_path / "g48.pcm", rate=48000))
    assert rate == 48000 and up.shape == (2, 48000)
    with pytest.raises(HandoffError, match="g.pcm already exists"):
        write_pcm(tmp_path / "g.wav", tmp_path / "g.pcm")
