"""Quality report of a bundle against held-out audio, beside the model it replaces: the gates of a default model.

    python -m bench.quality_report --bundle models/default --previous /tmp/msanii-v1 --heldout data/piano/heldout \
        --run runs/piano --out models/default/REPORT.md

1. Musicality (bench.musicality): flatness, octave-band profile, onset rate, beat clarity, chroma entropy, log-mel
   frame-to-frame change and broadband-jump rate, and a Fréchet distance on log-mel statistics, for generated clips
   of both bundles, for held-out audio reconstructed through each bundle (mel -> vocoder -> Griffin-Lim: the
   ceiling a generated clip can reach) and for white noise, with the held-out set's half-vs-half spread as the
   tolerance. The gates of a new default model are checked and listed.
2. Spectrogram pictures: held-out audio beside generated seeds of both bundles.
3. Vocoder: SC / log-magnitude L1 and the level of each octave band against the true magnitude, for the mel
   pseudo-inverse (the paper's baseline) and both bundles' vocoders.
4. Training: steps, time and the held-out denoising loss curve (bench.heldout_loss) of `--run`.
5. Region tasks: bench.region_quality's default row (inpaint 3 s, outpaint 3 s) for both bundles.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench import musicality
from bench.musicality import reconstruct
from bench.reference import (audio_files, check_set_size, corpus_false_failure, judge_against_reference,
                             measure_reference, middle_clip, middle_clip_measures, training_files)
from engine.api import Engine
from engine.audio_io import write_audio
from engine.dsp import log_mel, stft_magnitude
from engine.dsp.mel_inverse import mel_to_magnitude
from engine.dsp.phase import fast_griffin_lim, spectral_convergence
from engine.render import vocode
from engine.tasks.generate import generate


def load_clips(folder: Path, seconds: float, count: int, rate: int) -> list[np.ndarray]:
    """Up to `count` clips of `seconds` from the middle of each held-out file, [2, samples] float32. From a folder
    of more files than `count`, the files are taken spread evenly over its sorted listing (the first `count` names
    of a corpus split are all of one source: make-corpus names music21 windows m21-*, before pop-*); a file too
    short for a clip gives way to the next one after it."""
    files = audio_files(folder)
    if not files:
        raise SystemExit(f"no held-out audio in {folder}")
    starts = [0]
    if len(files) > count > 0:
        starts = sorted(set(np.linspace(0, len(files) - 1, count).round().astype(int).tolist()))
    stretches = [files[a:b] for a, b in zip(starts, [*starts[1:], len(files)])]  # each from a start to the next
    clips, used = [], set()
    for stretch in stretches:  # one clip per stretch first, then whatever is left, in order
        for path in stretch:
            clip = middle_clip(path, seconds, rate)
            used.add(path)
            if clip is not None:
                clips.append(clip)
                break
    for path in files:
        if len(clips) >= count:
            break
        clip = None if path in used else middle_clip(path, seconds, rate)
        if clip is not None:
            clips.append(clip)
    return clips[:count]


def log_mag_l1(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> float:
    return float((torch.log(est + eps) - torch.log(ref + eps)).abs().mean())


def band_levels_db(mag: torch.Tensor, ref: torch.Tensor, cfg) -> np.ndarray:
    """Energy of `mag` against `ref` [C, freqs, frames] in each octave band of bench.musicality, dB."""
    freqs = np.arange(ref.shape[-2]) * cfg.sample_rate / cfg.n_fft
    p, q = (mag.double() ** 2).sum((0, 2)).numpy(), (ref.double() ** 2).sum((0, 2)).numpy()
    return np.array([10 * np.log10(p[(freqs >= lo) & (freqs < hi)].sum() / max(q[(freqs >= lo) & (freqs < hi)].sum(),
                                                                                 1e-20) + 1e-12)
                     for lo, hi in zip(musicality.OCTAVE_EDGES, musicality.OCTAVE_EDGES[1:])])


def vocoder_section(engines: dict[str, Engine], clips: list[np.ndarray], gl_iters: int, png: Path) -> dict:
    """Per method: magnitude SC, log-magnitude L1, audio SC after Griffin-Lim, per-octave level vs the truth."""
    cfg = next(iter(engines.values())).bundle.spectrogram
    rows: dict[str, list] = {"mel pseudo-inverse (paper baseline)": []}
    rows.update({f"vocoder: {name}": [] for name in engines})
    for i, clip in enumerate(clips):
        audio = torch.from_numpy(clip)
        ref = stft_magnitude(audio, cfg)
        mel = torch.exp(log_mel(audio, cfg)) - cfg.log_floor
        mags = {"mel pseudo-inverse (paper baseline)": mel_to_magnitude(mel.clamp_min(0), cfg)}
        for name, engine in engines.items():
            mags[f"vocoder: {name}"] = vocode(engine.encode(audio)[None], engine.bundle, engine.vocoder,
                                              ref.shape[-1])[0]
        for name, mag in mags.items():
            wav = fast_griffin_lim(mag, cfg, n_iter=gl_iters, length=audio.shape[-1],
                                   generator=torch.Generator().manual_seed(i))
            rows[name].append({"magnitude_sc": float(torch.linalg.vector_norm(mag - ref) / torch.linalg.vector_norm(ref)),
                               "log_magnitude_l1": log_mag_l1(mag, ref), "audio_sc": spectral_convergence(wav, ref, cfg),
                               "bands_db": band_levels_db(mag, ref, cfg)})
        if i == 0:
            spectrogram_png(png, [("original", ref)] + list(mags.items()), cfg)
    return {name: {k: np.mean([r[k] for r in v], axis=0) for k in v[0]} for name, v in rows.items()}


def spectrogram_png(path: Path, panels: list[tuple[str, torch.Tensor]], cfg) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.3 * len(panels)), squeeze=False)
    for ax, (title, mag) in zip(axes[:, 0], panels):
        db = 20 * torch.log10(mag[0].clamp_min(1e-5)).numpy()
        seconds = mag.shape[-1] * cfg.hop_length / cfg.sample_rate
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max(),
                  extent=(0, seconds, 0, cfg.sample_rate / 2000))
        ax.set_title(title), ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def generate_clips(engine: Engine, seeds: list[int], seconds: float, tempo_for=lambda seed: None
                   ) -> tuple[list[np.ndarray], float]:
    """One clip per seed at the bundle's defaults (`tempo_for(seed)`: the tempo asked, None: the seed's default),
    and the mean render time per clip."""
    clips, started = [], time.perf_counter()
    for seed in seeds:
        clips.append(np.asarray(generate(engine, seconds, seed=seed, tempo=tempo_for(seed)).audio,
                                dtype=np.float32))
    return clips, (time.perf_counter() - started) / len(seeds)


def tempo_label(engine: Engine, seed: int) -> str:
    """' (88 BPM, 4/4)': the tempo a seed's generation follows, for a picture's title ('' without a beat grid)."""
    tempo = engine.default_tempo(seed)
    return "" if tempo is None else f" ({tempo.bpm:g} BPM, {tempo.numerator}/{tempo.denominator})"


def musicality_section(engines: dict[str, Engine], heldout: list[np.ndarray], seeds: list[int], seconds: float,
                       out_dir: Path, keep: int, guidance: tuple[float, ...] = ()) -> dict:
    """Generated and reconstructed sets of every bundle judged against the held-out clips; `guidance`: the new
    (beat-conditioned) bundle also rendered at its default tempos with these beat-guidance scales."""
    cfg = next(iter(engines.values())).bundle.spectrogram
    sets, speed, generated = {}, {}, {}
    for name, engine in engines.items():
        generated[name], speed[name] = generate_clips(engine, seeds, seconds)
        sets[f"{name}: generated"] = generated[name]
    new_engine = next(iter(engines.values()))
    if new_engine.bundle.beat is not None:
        for w in guidance:
            label = f"new: beat guidance {w:g}"
            sets[label], speed[label] = generate_clips(
                new_engine, seeds, seconds, lambda seed, w=w: replace(new_engine.default_tempo(seed), guidance=w))
    for name, engine in engines.items():
        sets[f"{name}: held-out reconstructed"] = [reconstruct(engine, c) for c in heldout]
    result = musicality.judge(heldout, sets, cfg, noise_clips=len(seeds))
    new = next(iter(engines))
    for seed, audio in list(zip(seeds, generated[new]))[:keep]:
        path = out_dir / f"sample-seed{seed}.flac"
        path.unlink(missing_ok=True)
        write_audio(path, audio, engines[new].sample_rate, format="flac", bit_depth=16)
    panels = [("held-out (real)", stft_magnitude(torch.from_numpy(heldout[0]), cfg))]
    for name in engines:
        shown = list(zip(seeds, generated[name]))[:3 if name == new else 2]
        panels += [(f"{name}, seed {seed}{tempo_label(engines[name], seed)}", stft_magnitude(torch.from_numpy(a), cfg))
                   for seed, a in shown]
    spectrogram_png(out_dir / "generated.png", panels, cfg)
    return {**result, "seconds_per_clip": speed}


def unet_provenance(engine: Engine) -> dict:
    """The manifest's record of the bundle's U-Net checkpoint (step, data, ...); empty when the bundle has none."""
    return engine.bundle.manifest.get("provenance", {}).get("unet", {})


def training_clips(corpus_json: Path, cfg, seconds: float) -> list[dict]:
    """clip_measures of one clip from the middle of each train file of a make-corpus listing (shorter files
    skipped): the model's own training data, judged by the issue's gates like a generated set."""
    return middle_clip_measures(training_files(corpus_json), cfg, seconds)


def training_corpus_of(engine: Engine) -> Path | None:
    """The corpus.json beside the folder the bundle's U-Net trained on (manifest provenance), if it is here."""
    root = unet_provenance(engine).get("data", {}).get("root")
    path = Path(root).parent / "corpus.json" if root else None
    return path if path is not None and path.is_file() else None


def training_section(run: Path | None, unet_step: int | None = None) -> dict:
    """Steps and seconds of the run's losses.csv per model, the U-Net's up to `unet_step` (the step the bundle was
    exported from, when the run trained on past it), and the held-out loss curve when the run has one."""
    if run is None:
        return {}
    out = {}
    for kind in ("unet", "vocoder"):
        path = run / kind / "losses.csv"
        if path.is_file():
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            if kind == "unet" and unet_step:
                rows = [r for r in rows if int(r["step"]) <= unet_step] or rows
            seconds = float(rows[-1]["seconds"])
            out[kind] = {"steps": int(rows[-1]["step"]), "seconds": seconds,
                         "seconds_per_step": seconds / max(int(rows[-1]["step"]), 1)}
    curve = run / "heldout.csv"
    if curve.is_file():
        with curve.open(newline="") as handle:
            out["heldout_curve"] = [(int(r["step"]), float(r["heldout_mse_raw"]), float(r["heldout_mse_ema"]),
                                     float(r.get("heldout_mse_ema_grid") or "nan")) for r in csv.DictReader(handle)]
        settings = curve.with_name(curve.name + ".json")  # what bench.heldout_loss scored it on
        if settings.is_file():
            out["heldout_curve_settings"] = json.loads(settings.read_text())
    return out


def recorded_training_section(report_json: Path, unet_step: int | None = None) -> dict:
    """The training section of an earlier report.json of the same bundle, for a machine without the run folder
    (runs/ is not committed): refused when it holds none or records another U-Net step than the bundle's."""
    try:
        section = json.loads(report_json.read_text()).get("training")
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"{report_json}: not a readable report.json ({exc})") from exc
    if not section:
        raise ValueError(f"{report_json} records no training (its report was made without --run)")
    recorded = section.get("unet", {}).get("steps")
    if unet_step and recorded != unet_step:
        raise ValueError(f"{report_json} records a U-Net of step {recorded}, the bundle's is of step {unet_step}")
    return {**section, "recorded_in": str(report_json)}


def region_section(bundles: dict[str, Path], heldout: Path, clips: int) -> dict[str, str]:
    from bench import region_quality

    tables = {}
    for name, bundle in bundles.items():
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            region_quality.main(["--bundle", str(bundle), "--heldout", str(heldout), "--clips", str(clips),
                                 "--rows", "default"])
        tables[name] = buffer.getvalue().strip()
    return tables


def tempo_section(engine: Engine, heldout: Path, seconds: float, clips: int, tempos=(80.0, 100.0, 120.0),
                  seeds=(0, 1), guidance: tuple[float, ...] = ()) -> dict:
    """bench.tempo_follow's tables for a beat-conditioned bundle ({} for any other): its defaults, then each
    beat-guidance scale of `guidance` ("guided": [(scale, table)])."""
    if engine.bundle.beat is None:
        return {}
    from bench import tempo_follow

    generated = tempo_follow.generated_rows(engine, list(tempos), list(seeds), seconds)
    guided = [(w, tempo_follow.table(tempo_follow.generated_rows(engine, list(tempos), list(seeds), seconds, w),
                                     f"generated, beat guidance {w:g}")) for w in guidance]
    real = tempo_follow.real_rows(heldout, engine.bundle.spectrogram, seconds, clips)
    return {"generated": tempo_follow.table(generated, "generated"), "guided": guided,
            "real": tempo_follow.table(real, "held-out")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--previous", type=Path, help="the bundle this one replaces, measured beside it")
    parser.add_argument("--heldout", type=Path, required=True)
    training = parser.add_mutually_exclusive_group()
    training.add_argument("--run", type=Path, help="training run folder (losses.csv, heldout.csv)")
    training.add_argument("--training-from", type=Path, metavar="REPORT_JSON",
                          help="the training figures of an earlier report.json of this bundle, where its run folder "
                               "is not on this machine")
    parser.add_argument("--out", type=Path, required=True, help="REPORT.md path; pictures go beside it")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--gl-iters", type=int, default=None,
                        help="Griffin-Lim iterations of the vocoder table (default: the new bundle's, as it renders)")
    parser.add_argument("--keep-wavs", type=int, default=2)
    parser.add_argument("--region-clips", type=int, default=4, help="held-out clips for the region tasks (0: skip)")
    parser.add_argument("--beat-guidance", type=float, nargs="+", default=[], metavar="W",
                        help="a beat-conditioned bundle is also judged and asked for tempos with these beat-guidance "
                             "scales (engine.regions.Tempo.guidance)")
    parser.add_argument("--reference", type=Path, nargs="+", default=[], metavar="DIR",
                        help="more real audio never trained on (e.g. a corpus made with another --seed): with the "
                             "held-out folder, the reference of the calibrated gates (bench.reference)")
    parser.add_argument("--training-corpus", type=Path,
                        help="corpus.json of the U-Net's training data: its train pieces are left out of the "
                             "reference (default: the one beside the bundle's training folder, when found)")
    args = parser.parse_args(argv)
    if args.training_corpus is not None and not args.training_corpus.is_file():
        parser.error(f"--training-corpus {args.training_corpus}: no such file")
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    bundles = {"new": args.bundle, **({"previous": args.previous} if args.previous else {})}
    engines = {name: Engine.load(path) for name, path in bundles.items()}
    unet_step = unet_provenance(engines["new"]).get("step")
    if args.training_from is not None:
        try:
            training = recorded_training_section(args.training_from, unet_step)
        except ValueError as exc:
            parser.error(f"--training-from: {exc}")
    else:
        training = training_section(args.run, unet_step)
    if args.gl_iters is None:
        args.gl_iters = engines["new"].bundle.defaults.gl_iters
    heldout = load_clips(args.heldout, args.seconds, args.clips, engines["new"].sample_rate)
    if args.reference:  # measured first: a seed count it cannot judge is an error before the renders
        corpus = args.training_corpus or training_corpus_of(engines["new"])
        reference = measure_reference([args.heldout, *args.reference], corpus, engines["new"].bundle.spectrogram,
                                      args.seconds)
        try:
            check_set_size(len(args.seeds), len(reference.per_clip))
        except ValueError as exc:
            parser.error(f"--seeds: {exc}")
        corpus_clips = training_clips(corpus, engines["new"].bundle.spectrogram, args.seconds) if corpus else []
    guidance = tuple(args.beat_guidance)
    sections = {"musicality": musicality_section(engines, heldout, args.seeds, args.seconds, out_dir, args.keep_wavs,
                                                 guidance),
                "vocoder": vocoder_section(engines, heldout, args.gl_iters, out_dir / "vocoder.png"),
                "training": training,
                "regions": region_section(bundles, args.heldout, args.region_clips) if args.region_clips else {},
                "tempo": tempo_section(engines["new"], args.heldout, args.seconds, args.clips, guidance=guidance)}
    if args.reference:
        summaries = sections["musicality"]["summaries"]
        sections["calibrated"] = judge_against_reference(
            {name: summaries[f"{name}: generated"] for name in engines}, reference, held=len(heldout))
        if len(corpus_clips) >= len(args.seeds):
            sections["calibrated"]["corpus_false_failure"] = corpus_false_failure(
                corpus_clips, sections["musicality"]["real"]["clips"], len(args.seeds))
            sections["calibrated"]["corpus_false_failure"]["corpus"] = str(corpus)
        from bench.by_style import report_table

        sections["styles"] = report_table(
            {f"{name}: generated": summaries[f"{name}: generated"]["clips"] for name in engines}, reference,
            args.seconds, engines["new"].bundle.spectrogram)
    from bench.report_markdown import render_markdown

    text = render_markdown(engines, args, len(heldout), sections)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    tmp = out_dir / "report.json.tmp"
    tmp.write_text(json.dumps(musicality._jsonable({k: v for k, v in sections.items() if k != "regions"}), indent=1)
                   + "\n")
    tmp.replace(out_dir / "report.json")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
