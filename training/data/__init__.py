"""Training data: audio folders (`audio_folder`), FluidSynth MIDI rendering (`midi`), the offline corpus
(`procedural`, `music21_source`, `corpus`) and their `msanii-train` sub-commands (`commands`).

Modules are imported explicitly (e.g. `from training.data.audio_folder import AudioFolderDataset`) so that using one
part does not pull in the others' dependencies (mido, music21).
"""
