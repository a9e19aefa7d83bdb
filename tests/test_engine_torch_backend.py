"""The torch backend: `msanii-export --torch` writes exported programs, the engine runs them (CPU here; the CUDA
graph test runs where a GPU exists) and matches the onnxruntime backend on the same bundle."""
import json
import shutil

import numpy as np
import pytest
import torch

from engine.api import Engine, choose_backend
from engine.backends.onnx import BackendError
from engine.bundle import BundleError, load_bundle
from engine.cli import main as render_main
from engine.dsp.spectrogram import log_mel
from engine.sampling import make_scheduler, sample
from engine.tasks.generate import generate, generate_batch
from export.cli import main as export_main


@pytest.fixture(scope="module")
def engines(program_bundle):
    return (Engine.load(program_bundle, device="cpu", threads=1, backend="onnx"),
            Engine.load(program_bundle, device="cpu", threads=1, backend="torch"))


def test_export_writes_checked_programs(program_bundle):
    manifest = json.loads((program_bundle / "manifest.json").read_text())
    assert {"unet.pt2", "vocoder.pt2"} <= set(manifest["files"])
    parity = manifest["parity"]["torch"]
    assert parity["unet"]["max_rel_error"] < 1e-5 and parity["vocoder"]["max_rel_error"] < 1e-5
    assert parity["unet"]["frames"] == [16, 48]  # checked at two lengths, from the saved files
    assert load_bundle(program_bundle).has_programs


def test_compact_programs_follow_the_rounded_graphs(tiny_run_dir, tmp_path):
    out = tmp_path / "compact"
    assert export_main([str(tiny_run_dir), str(out), "--torch", "--compact"]) == 0
    onnx_engine = Engine.load(out, device="cpu", threads=1, backend="onnx")
    torch_engine = Engine.load(out, device="cpu", threads=1, backend="torch")
    x = torch.randn(2, 2, 128, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10.0, 900.0])
    a, b = onnx_engine.denoiser(x, t), torch_engine.denoiser(x, t)
    assert float((a - b).abs().max()) < 1e-4 * float(a.abs().max())  # same fp16-rounded weights on both


def test_backends_agree_call_by_call_and_over_a_sampling_run(engines):
    onnx_engine, torch_engine = engines
    assert (onnx_engine.backend, torch_engine.backend) == ("onnx", "torch")
    assert {e.tensor_device.type for e in engines} == {e.dsp_device.type for e in engines} == {"cpu"}
    x = torch.randn(1, 2, 128, 64, generator=torch.Generator().manual_seed(0))
    t = torch.full((1,), 500.0)
    a, b = onnx_engine.denoiser(x, t), torch_engine.denoiser(x, t)
    assert b.dtype == torch.float32 and b.device == x.device and b.shape == x.shape
    assert float((a - b).abs().max()) < 1e-5
    finals = []
    for engine in engines:
        scheduler = make_scheduler("dpmpp", **engine.bundle.diffusion.to_dict(), order=3, steps=12)
        finals.append(sample(engine.denoiser, x.clone(), scheduler, 12, spacing="logsnr", disable=True))
    assert float((finals[0] - finals[1]).abs().max()) < 1e-3
    mags = [engine.vocoder(finals[0]) for engine in engines]
    assert float((mags[0] - mags[1]).abs().max() / mags[0].abs().max()) < 1e-5


def test_one_block_inputs_run_on_a_wrap_padded_canvas(engines):
    torch_engine = engines[1]
    multiple = torch_engine.bundle.frame_multiple
    assert torch_engine.denoiser.min_frames == 2 * multiple  # what the program's range constraints say
    x = torch.randn(1, 2, 128, multiple, generator=torch.Generator().manual_seed(5))
    t = torch.full((1,), 700.0)
    expected = torch_engine.denoiser(torch.cat((x, x), dim=-1), t)[..., :multiple]
    assert torch.equal(torch_engine.denoiser(x, t), expected)
    short = generate(torch_engine, 0.02, seed=1, steps=2, gl_iters=2)  # 2 frames: one block of the tiny U-Net
    assert short.info["model_frames"] == multiple and short.audio.shape == (2, 882)


def test_program_moves_to_another_device(program_bundle):
    """Exported graphs record the device of the constants they make and assert their inputs' device; loading for
    another device rewrites both. The meta device stands in for a GPU here (same code path, no kernels)."""
    from engine.backends.torch_program import load_program

    module, min_frames = load_program(program_bundle / "unet.pt2", torch.device("meta"))
    assert all(p.device.type == "meta" for p in module.parameters())
    out = module(torch.randn(2, 2, 128, 8, device="meta"), torch.rand(2, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 2, 128, 8) and min_frames == 4
    cpu_module, _ = load_program(program_bundle / "unet.pt2", torch.device("cpu"))
    with pytest.raises(Exception):  # not moved: the graph's own device assertion refuses meta inputs
        cpu_module(torch.randn(2, 2, 128, 8, device="meta"), torch.rand(2, device="meta"))


def test_generate_on_the_torch_backend_matches_onnx(engines):
    onnx_engine, torch_engine = engines
    a = generate(onnx_engine, 1.5, seed=4, steps=6, gl_iters=8)
    b = generate(torch_engine, 1.5, seed=4, steps=6, gl_iters=8)
    assert b.info["backend"] == "torch" and b.info["device"] == "cpu" and a.info["backend"] == "onnx"
    assert b.audio.shape == a.audio.shape == (2, 66150) and b.audio.dtype == np.float32
    # Griffin-Lim amplifies 1e-5 model differences into sample-level ones; the spectra must agree.
    cfg = onnx_engine.bundle.spectrogram
    mel_a, mel_b = log_mel(torch.from_numpy(a.audio), cfg), log_mel(torch.from_numpy(b.audio), cfg)
    assert float((mel_a - mel_b).abs().mean()) < 0.02
    assert abs(a.info["spectral_convergence"] - b.info["spectral_convergence"]) < 0.01


def test_bf16_precision_runs_close_to_fp32(program_bundle, engines):
    half = Engine.load(program_bundle, device="cpu", threads=1, backend="torch", precision="bf16")
    x = torch.randn(1, 2, 128, 32, generator=torch.Generator().manual_seed(2))
    t = torch.full((1,), 300.0)
    ref, got = engines[1].denoiser(x, t), half.denoiser(x, t)
    assert got.dtype == torch.float32
    relative = float((got - ref).norm() / ref.norm())
    assert 0 < relative < 0.05  # rounded (not silently fp32), but the same function


def test_backend_choice_and_errors(tiny_bundle, program_bundle):
    plain, programs = load_bundle(tiny_bundle), load_bundle(program_bundle)
    gpu = torch.cuda.is_available()
    assert choose_backend("auto", "cpu", programs) == "onnx"  # onnxruntime stays the CPU path (it is faster)
    assert choose_backend("auto", "auto", programs) == ("torch" if gpu else "onnx")
    assert choose_backend("auto", "cuda", plain) == "onnx"
    with pytest.raises(BackendError, match="has no torch programs .*msanii-export --torch"):
        Engine.load(tiny_bundle, device="cpu", backend="torch")
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        Engine.load(program_bundle, device="cpu", backend="tensorflow")
    with pytest.raises(BackendError, match="torch-backend settings"):
        Engine.load(program_bundle, device="cpu", backend="onnx", precision="fp16")
    with pytest.raises(BackendError, match="unknown precision 'fp8'"):
        Engine.load(program_bundle, device="cpu", backend="torch", precision="fp8")
    with pytest.raises(BackendError, match="CUDA graphs need a CUDA device"):
        Engine.load(program_bundle, device="cpu", backend="torch", cuda_graphs=True)
    if not gpu:
        with pytest.raises(BackendError, match="torch sees no CUDA device"):
            Engine.load(program_bundle, device="cuda", backend="torch")


def test_damaged_programs_are_named(program_bundle, tmp_path):
    half_pair = shutil.copytree(program_bundle, tmp_path / "half")
    manifest = json.loads((half_pair / "manifest.json").read_text())
    del manifest["files"]["vocoder.pt2"]
    (half_pair / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="lists 'unet.pt2' without its twin"):
        load_bundle(half_pair)

    foreign = shutil.copytree(program_bundle, tmp_path / "foreign")
    (foreign / "unet.pt2").write_bytes(b"not a torch archive" * 10)
    manifest = json.loads((foreign / "manifest.json").read_text())
    from engine.bundle import file_entry
    manifest["files"]["unet.pt2"] = file_entry(foreign / "unet.pt2")  # checksum matches: the content is wrong
    (foreign / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackendError, match="cannot load unet.pt2 as a torch exported program"):
        Engine.load(foreign, device="cpu", backend="torch")


def test_render_cli_with_the_torch_backend(program_bundle, tmp_path, capsys):
    out = tmp_path / "take.wav"
    code = render_main(["generate", "--bundle", str(program_bundle), "--backend", "torch", "--seconds", "0.75",
                        "--seed", "3", "--steps", "3", "--gl-iters", "4", "--out", str(out), "--json", "--quiet"])
    assert code == 0 and out.is_file()
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "torch" and report["seed"] == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_backend_with_graphs_matches_eager(program_bundle, tmp_path):
    eager = Engine.load(program_bundle, device="cuda", backend="torch")
    graphed = Engine.load(program_bundle, device="cuda", backend="torch", cuda_graphs=True)
    assert eager.tensor_device.type == "cuda"
    x = torch.randn(1, 2, 128, 32, device="cuda")
    t = torch.full((1,), 500.0, device="cuda")
    for _ in range(3):  # capture, then replays; a new shape captures again
        assert float((graphed.denoiser(x, t) - eager.denoiser(x, t)).abs().max()) < 1e-4
    assert graphed.denoiser(x[..., :16], t).shape[-1] == 16
    a = generate(eager, 1.0, seed=1, steps=4, gl_iters=4)
    b = generate(graphed, 1.0, seed=1, steps=4, gl_iters=4)
    assert a.info["device"] == "cuda" and abs(a.info["spectral_convergence"] - b.info["spectral_convergence"]) < 0.01
    batch = generate_batch(graphed, 1.0, [1, 2], steps=4, gl_iters=4)
    assert np.abs(batch[0].audio - b.audio).max() < 1e-2 * max(np.abs(b.audio).max(), 1e-6)
    # Region tasks sample on the GPU too (noise drawn on the CPU): the same edits as the CPU engine's.
    import soundfile as sf

    from engine.tasks.inpaint import inpaint
    from engine.tasks.interpolate import interpolate
    from engine.tasks.loop import loop
    cpu = Engine.load(program_bundle, device="cpu", threads=1, backend="torch")
    source = tmp_path / "take.wav"
    sf.write(source, a.audio.T, a.sample_rate, subtype="FLOAT")
    for task in (lambda e: inpaint(e, source, [(0.3, 0.6)], seed=2, steps=3, gl_iters=4),
                 lambda e: interpolate(e, source, source, 0.5, seed=2, steps=4, gl_iters=4),
                 lambda e: loop(e, 0.5, seed=2, steps=3, gl_iters=4)):
        on_gpu, on_cpu = task(eager), task(cpu)
        assert on_gpu.audio.shape == on_cpu.audio.shape and np.isfinite(on_gpu.audio).all()
        assert np.abs(on_gpu.audio - on_cpu.audio).max() < 5e-2 * max(np.abs(on_cpu.audio).max(), 1e-6)
