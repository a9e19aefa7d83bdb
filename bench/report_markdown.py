"""REPORT.md of bench.quality_report: the sections' figures as markdown tables, and the gates' verdict."""
from __future__ import annotations

import json
import time

import numpy as np

from bench import musicality

GATE_MEASURES = ("onset_rate", "beat_clarity", "chroma_entropy", "mel_change", "jump_rate")


def gates(musical: dict, name: str) -> list[tuple[str, bool, str]]:
    """(gate, passed, figures) for the generated clips of bundle `name`."""
    row = musical["rows"][f"{name}: generated"]
    real = musical["real"]
    flat = row["measures"]["flatness"]["value"]
    out = [("median flatness within 25 % of the held-out's and < 0.15", bool(row["pass"]["flatness_gate"]),
            f"{flat:.3f} vs {real['flatness']:.3f} ({100 * (flat / real['flatness'] - 1):+.0f} %)")]
    for key in GATE_MEASURES:
        m = row["measures"][key]
        out.append((f"{key} within the held-out half-vs-half spread", bool(row["pass"][key]),
                    f"{m['value']:.3f} vs {m['real']:.3f} (spread {m['spread']:.3f})"))
    gap, spread = row["bands"]["gap_db"], row["bands"]["spread_db"]
    worst = int(np.argmax(gap - spread))
    out.append(("octave-band profile within the spread (at least 1 dB) in every band", bool(row["pass"]["bands"]),
                f"worst band {musicality.BAND_NAMES[worst]} Hz: {gap[worst]:.1f} dB off, spread {spread[worst]:.1f}"))
    out.append(("Fréchet distance (reported beside the real halves' and white noise's)", True,
                f"{row['frechet']:.1f} (halves {musical['halves_frechet']:.1f}, "
                f"white noise {musical['rows']['white noise']['frechet']:.1f})"))
    return out


def calibrated_lines(cal: dict, names: list[str]) -> list[str]:
    """The calibrated gates (bench.reference) of each bundle's generated clips, and the issue's gates' false
    failures on real music."""
    tol = cal["tolerances"]
    corpus = (f"minus {cal['excluded']} pieces of the training corpus `{cal['training_corpus']}`"
              if cal["training_corpus"] else "**not checked against a training corpus** (none found or given)")
    lines = [f"Reference: {cal['reference_clips']} real clips, one from the middle of each file in "
             + ", ".join(f"`{f}`" for f in cal["folders"]) + f", {corpus}. Tolerance: how far {tol['size']} of "
             f"these clips land from the rest, per measure, at the {100 * tol['quantile']:.2f} % quantile of "
             f"2,000 draws, where real sets pass every gate at once in {100 * tol['joint_pass']:.0f} % of draws "
             "(bench/reference.py).", ""]
    ff = cal.get("literal_false_failure")
    if ff:
        lines += [f"The issue's gates (above) on real music: {tol['size']} reference clips against {cal['held']} "
                  f"others fail at least one of them in {100 * ff['any']:.0f} % of draws (band profile "
                  f"{100 * ff['bands']:.0f} %, each scalar measure "
                  + ", ".join(f"{k} {100 * ff[k]:.0f} %" for k in GATE_MEASURES) + ").", ""]
    cf = cal.get("corpus_false_failure")
    if cf:
        whole = cf["whole"]
        rates = ", ".join(f"{k} {100 * cf[k]:.0f} %" for k in GATE_MEASURES)
        lines += [f"The issue's gates on the model's own training data: {tol['size']} clips drawn from the "
                  f"{cf['corpus_clips']} train clips of `{cf['corpus']}` (one from the middle of each file) against "
                  f"the same {cal['held']} held-out clips fail at least one gate in {100 * cf['any']:.0f} % of draws "
                  f"(band profile {100 * cf['bands']:.0f} %, {rates}). All of them as one set: " + ", ".join(
                      f"{k} {whole['figures'][k]:.3f} (held-out {whole['heldout'][k]:.3f})" for k in GATE_MEASURES)
                  + "; failing " + (", ".join(whole["failed"]) or "none") + ". A model that reproduced its corpus "
                  "exactly would fail these gates as often.", ""]
    lines += ["| gate | reference | tolerance | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    gates_of = [cal["gates"][n] for n in names]
    for key in GATE_MEASURES:
        g0 = gates_of[0][key]
        lines.append(f"| {key} | {g0['real']:.3f} | {g0['tolerance']:.3f} | " + " | ".join(
            f"{g[key]['value']:.3f}{'' if g[key]['passed'] else ' ✗'}" for g in gates_of) + " |")
    for band in musicality.BAND_NAMES:
        b0 = gates_of[0]["bands"][band]
        lines.append(f"| band {band} Hz (gap, dB) | | {b0['tolerance']:.1f} | " + " | ".join(
            f"{g['bands'][band]['gap_db']:+.1f}{'' if g['bands'][band]['passed'] else ' ✗'}" for g in gates_of) + " |")
    lines.append("| **all calibrated gates** | | | " + " | ".join(
        "yes" if g["passed"] else "**no**" for g in gates_of) + " |")
    real = cal["frechet_real"]
    lines += ["", "Fréchet distance (log-mel statistics) to the whole reference: " + ", ".join(
        f"{n} {cal['frechet'][n]:.1f}" for n in names) + f"; {tol['size']} real reference clips against the others: "
        f"median {real['median']:.1f}, 90th percentile {real['p90']:.1f} (not a gate)."]
    return lines


def vocoder_table(vocoder: dict) -> list[str]:
    bands = musicality.BAND_NAMES
    lines = ["| method | magnitude SC | log-magnitude L1 | audio SC after Griffin-Lim | "
             + " | ".join(f"{b} Hz" for b in bands) + " |", "|---|---|---|---|" + "---|" * len(bands)]
    for name, r in vocoder.items():
        lines.append(f"| {name} | {r['magnitude_sc']:.4f} | {r['log_magnitude_l1']:.4f} | {r['audio_sc']:.4f} | "
                     + " | ".join(f"{v:+.1f}" for v in r["bands_db"]) + " |")
    return lines


def training_lines(training: dict) -> list[str]:
    if not training:
        return ["Not given (`--run`)."]
    lines = ([f"Recorded in `{training['recorded_in']}` by an earlier report of this bundle (its run folder was not "
              "on this machine)."] if training.get("recorded_in") else [])
    for kind in ("unet", "vocoder"):
        if kind in training:
            t = training[kind]
            lines.append(f"- {kind}: {t['steps']} steps in {t['seconds'] / 3600:.2f} h of this run "
                         f"({t['seconds_per_step']:.2f} s/step on average; threads and pauses: the provenance below)")
    curve = training.get("heldout_curve")
    if curve:
        gridded = any(len(row) > 3 and row[3] == row[3] for row in curve)  # a beat model scored on its grids
        on = training.get("heldout_curve_settings")
        scored = (f"{on['crops']} crops of {on['frames']} frames from `{on['heldout']}` x {on['timesteps']} "
                  "timesteps" if on else "fixed crops, noise and timesteps")
        lines += ["", f"Held-out denoising loss (MSE on the noise; {scored}, the same for every checkpoint: "
                  "`python -m bench.heldout_loss`):", "",
                  "| step | raw weights | EMA weights |" + (" EMA, crops' own beat grids |" if gridded else ""),
                  "|---|---|---|" + ("---|" if gridded else "")]
        lines += [f"| {row[0]} | {row[1]:.4f} | {row[2]:.4f} |" + (f" {row[3]:.4f} |" if gridded else "")
                  for row in curve]
    return lines


def render_markdown(engines: dict, args, n_heldout: int, s: dict) -> str:
    new = engines["new"]
    m = new.bundle.manifest
    prov = m.get("provenance", {})
    musical = s["musicality"]
    speed = musical["seconds_per_clip"]
    lines = [
        f"# Quality report: `{new.name}`", "",
        f"Produced by `python -m bench.quality_report --bundle {args.bundle}"
        + (f" --previous {args.previous}" if args.previous else "")
        + f" --heldout {args.heldout}"
        + (" --reference " + " ".join(map(str, args.reference)) if getattr(args, "reference", None) else "")
        + (f" --training-corpus {args.training_corpus}" if getattr(args, "training_corpus", None) else "")
        + (f" --run {args.run}" if args.run else "")
        + (f" --training-from {args.training_from}" if getattr(args, "training_from", None) else "")
        + f" --out {args.out}"
        + f" --clips {args.clips} --region-clips {args.region_clips} --seeds " + " ".join(map(str, args.seeds))
        + ("".join(f" {w:g}" for w in args.beat_guidance).join([" --beat-guidance", ""])
           if getattr(args, "beat_guidance", None) else "") + "` on "
        f"{time.strftime('%Y-%m-%d')}. Held-out: {n_heldout} clips x {args.seconds:g} s from pieces never seen in "
        f"training. Generated: seeds {args.seeds}, {args.seconds:g} s each, bundle defaults "
        f"({json.dumps(m.get('defaults', {}))}).", "",
        "Columns: **new** is this bundle; **previous** is the bundle it replaces (measured in the same run). "
        "'Reconstructed' is held-out audio taken to the model's mel and back through the vocoder and Griffin-Lim: "
        "the ceiling a generated clip can reach with that bundle's vocoder.", "",
        "## Gates (new bundle, generated clips)", "",
        "| gate | passed | figures |", "|---|---|---|",
    ]
    lines += [f"| {gate} | {'yes' if ok else '**no**'} | {figures} |" for gate, ok, figures in gates(musical, "new")]
    if "previous" in engines:
        lines += ["", "The previous bundle on the same gates:", "", "| gate | passed | figures |", "|---|---|---|"]
        lines += [f"| {g} | {'yes' if ok else '**no**'} | {f} |" for g, ok, f in gates(musical, "previous")]
    if s.get("calibrated"):
        lines += ["", "## Calibrated gates (a larger reference, tolerances real music passes)", ""]
        lines += calibrated_lines(s["calibrated"], [n for n in ("new", "previous") if n in engines])
    if s.get("styles"):
        lines += ["", "## By style (`python -m bench.by_style`)", "",
                  "The corpus holds two styles: pop arrangements and music21 works (chorales, madrigals, quartets). "
                  "Real clips are split by their corpus source, generated ones (which carry no label) by their bass: "
                  "62.5-125 Hz under -15 dB of the total is chorale-like. bass_db is that band; chroma_movement (the "
                  "chroma distance from one second to the next) needs the audio and is left out here.", "",
                  s["styles"]]
    lines += ["", "## Musicality: every measure", "",
              "Flatness is of the STFT magnitude, 60 Hz-16 kHz (bench/musicality.py); bands are each octave's "
              "energy against the clip's total (held-out column) and the difference to it (other columns); ✗ "
              "marks a measure outside the held-out half-vs-half spread (a band: outside it or 1 dB, the larger; "
              "flatness: outside 25 % of the held-out's).",
              "", musical["table"], "",
              "Render time per 10 s clip on this machine (same run): "
              + ", ".join(f"{name} {sec:.1f} s" for name, sec in speed.items()) + ".", "",
              "![held-out vs generated](generated.png)", ""]
    if s.get("tempo"):
        lines += ["## Tempo following (`python -m bench.tempo_follow`)", "",
                  "This bundle follows a beat grid (manifest `beat`; generated clips above follow "
                  + ("a training piece's tempo and metre each seed draws (manifest `beat.tempo_prior`)"
                     if new.bundle.beat.tempo_prior else f"its default tempo, {new.bundle.beat.default_bpm:g} BPM")
                  + "). Here it is asked for set tempos; the held-out pieces are measured on their own grids (their "
                  "MIDI's beats).", "", s["tempo"]["generated"], ""]
        for _, guided in s["tempo"].get("guided", []):
            lines += [guided, ""]
        lines += [s["tempo"]["real"], ""]
    lines += ["## Vocoder on held-out audio", "",
              f"Griffin-Lim for all: fast variant, {args.gl_iters} iterations. SC and L1: lower is better. Band "
              "columns: the predicted magnitude's energy in each octave against the true magnitude's (dB; 0 = "
              "right level).", ""]
    lines += vocoder_table(s["vocoder"])
    lines += ["", "![vocoder](vocoder.png)", "", "## Training", ""]
    lines += training_lines(s["training"])
    prov_line = {k: prov[k] for k in ("corpus", "training_commands", "training_time", "weights") if k in prov}
    if prov_line:
        lines += ["", "Provenance (from the manifest):", "", "```json", json.dumps(prov_line, indent=1), "```"]
    lines += ["", "## Region tasks (`python -m bench.region_quality --rows default`)", ""]
    if s.get("regions"):
        for name, table in s["regions"].items():
            lines += [f"**{name}**", "", table, ""]
    else:
        lines.append("Not measured in this run (`--region-clips 0`).")
    return "\n".join(lines) + "\n"
