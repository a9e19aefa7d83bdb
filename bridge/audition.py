"""Live audition: play finished clips through sounddevice (PortAudio) without ever stalling the OSC server.

`Audition` probes PortAudio and the output device once, at start: when the library or the device is missing it
records a clear `error` (the server keeps running without audition and answers play requests with that reason).
`play(path)` and `stop()` only enqueue a command; a dedicated thread reads the file, opens an `OutputStream` fed
by a callback, and reports events ("playing", path, seconds) / ("stopped", path) / ("error", reason).
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

EventCallback = Callable[..., None]


def parse_device(text: str | None) -> int | str | None:
    """`--device` value: an index ("3"), a (partial) name ("USB Audio"), or None for the system default."""
    if text is None or text == "":
        return None
    return int(text) if text.strip().isdigit() else text


class _Playback:
    """One open stream playing `frames` [N, channels] from the start; the PortAudio thread runs `callback`."""

    def __init__(self, sd: Any, frames: np.ndarray, sample_rate: int, device: Any, path: Path,
                 on_event: EventCallback | None) -> None:
        self.frames = frames
        self.position = 0
        self.path = path
        self.on_event = on_event
        self.finished = threading.Event()
        self._sd = sd
        self.stream = sd.OutputStream(samplerate=sample_rate, device=device, channels=frames.shape[1],
                                      dtype="float32", callback=self._callback,
                                      finished_callback=self.finished.set)

    def _callback(self, outdata: np.ndarray, n: int, time_info: Any, status: Any) -> None:
        chunk = self.frames[self.position:self.position + n]
        outdata[: len(chunk)] = chunk
        if len(chunk) < n:
            outdata[len(chunk):] = 0
            self.position += len(chunk)
            raise self._sd.CallbackStop
        self.position += n


class Audition:
    """Non-blocking player on one output device (None = system default)."""

    def __init__(self, device: int | str | None = None) -> None:
        self.device = device
        self.available = False
        self.error: str | None = None
        self.device_name: str | None = None
        self._sd: Any = None
        self._device_info: dict | None = None
        self._commands: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._probe()
        if self.available:
            self._thread = threading.Thread(target=self._work, name="msanii-audition", daemon=True)
            self._thread.start()

    def _probe(self) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
            self.error = f"PortAudio library not found ({exc}); install libportaudio2 (Debian/Ubuntu)"
            return
        try:
            info = sd.query_devices(self.device, kind="output")
        except (ValueError, sd.PortAudioError) as exc:
            try:
                outputs = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
            except Exception:
                outputs = []
            which = "default output device" if self.device is None else f"output device {self.device!r}"
            listing = ", ".join(repr(n) for n in outputs) or "none"
            self.error = f"{which} not available ({exc}); outputs: {listing}"
            return
        self._sd = sd
        self._device_info = dict(info)
        self.device_name = str(info["name"])
        self.available = True

    # ---- caller side ----
    def play(self, path: Path | str, on_event: EventCallback | None = None) -> None:
        """Stop what is playing and play `path` (read on the audition thread)."""
        if not self.available:
            raise RuntimeError(f"audition unavailable: {self.error}")
        self._commands.put(("play", Path(path), on_event))

    def stop(self, on_event: EventCallback | None = None) -> None:
        """Stop playback; `on_event("stopped", path)` follows ("" when nothing was playing)."""
        if self.available:
            self._commands.put(("stop", None, on_event))

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._commands.put(("close", None, None))
            self._thread.join(timeout)

    # ---- audition thread ----
    def _work(self) -> None:
        current: _Playback | None = None
        while True:
            try:
                # Poll only while a stream is open (to close it when it ends); otherwise sleep on the queue.
                kind, path, on_event = self._commands.get(timeout=0.05 if current is not None else None)
            except queue.Empty:
                kind = None
            if current is not None and (kind is not None or current.finished.is_set()):
                ended_or_stopped = kind is None or kind == "stop"
                reporter = on_event if kind == "stop" and on_event is not None else current.on_event
                self._close(current, reporter if ended_or_stopped else None)
                current = None
            elif kind == "stop" and on_event is not None:
                on_event("stopped", "")
            if kind == "close":
                return
            if kind == "play":
                current = self._start(path, on_event)

    def _start(self, path: Path, on_event: EventCallback | None) -> _Playback | None:
        from engine.audio_io import read_audio
        try:
            audio_file = read_audio(path)
            frames = np.ascontiguousarray(audio_file.audio.T, dtype=np.float32)
            frames, rate = self._fit_device(frames, audio_file.sample_rate)
            playback = _Playback(self._sd, frames, rate, self.device, path, on_event)
            playback.stream.start()
        except Exception as exc:  # unreadable file, device busy or gone: report, keep the thread alive
            log.warning("audition of %s failed: %s", path, exc)
            if on_event is not None:
                on_event("error", f"cannot play {path.name}: {exc}")
            return None
        if on_event is not None:
            on_event("playing", str(path), len(frames) / rate)
        return playback

    def _fit_device(self, frames: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
        """Match the device: fold channels it lacks into the ones it has, resample if it refuses the rate."""
        max_channels = int(self._device_info["max_output_channels"])
        if frames.shape[1] > max_channels:
            if max_channels == 1:
                frames = frames.mean(axis=1, keepdims=True)
            else:
                frames = frames[:, :max_channels]
        try:
            self._sd.check_output_settings(device=self.device, channels=frames.shape[1], dtype="float32",
                                           samplerate=rate)
        except Exception:  # the device refuses this rate: play at its own
            from engine.audio_io import resample
            device_rate = int(self._device_info["default_samplerate"])
            frames = np.ascontiguousarray(resample(np.ascontiguousarray(frames.T), rate, device_rate).T)
            rate = device_rate
        return frames, rate

    def _close(self, playback: _Playback, reporter: EventCallback | None) -> None:
        try:
            if playback.finished.is_set():
                playback.stream.close()
            else:
                playback.stream.abort()
                playback.stream.close()
        except Exception as exc:
            log.warning("closing the audition stream failed: %s", exc)
        if reporter is not None:
            reporter("stopped", str(playback.path))
