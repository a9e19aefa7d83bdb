"""U-Net forward time: torch (fp32, bf16/fp16 autocast, optionally CUDA graphs) against the engine's onnxruntime
session, same architecture and input. Tells whether a torch inference path would beat the ONNX one on a device.

    python -m bench.torch_unet [--preset paper|small] [--frames 448,8192] [--device cpu|cuda] [--cuda-graphs]

Random weights (timing does not depend on them); the ONNX row uses the cached paper-size bundle of
bench_render (or `--bundle`), on the CPU provider. Prints ms per call (batch 1, stereo, 128 mels), the ratio to
torch fp32, and the relative output error of each reduced precision against fp32.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch


def time_calls(fn, calls: int) -> float:
    fn()  # warm-up (allocations, autotuning, graph capture)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="torch vs onnxruntime U-Net call time")
    p.add_argument("--preset", default="paper", choices=("paper", "small", "tiny"))
    p.add_argument("--frames", default="448")
    p.add_argument("--device", default="cpu")
    p.add_argument("--calls", type=int, default=4)
    p.add_argument("--cuda-graphs", action="store_true", help="also replay the fp16 forward as a CUDA graph")
    p.add_argument("--bundle", type=Path, help="ONNX bundle for the onnxruntime row (default: bench's paper bundle)")
    p.add_argument("--no-onnx", action="store_true")
    args = p.parse_args(argv)

    from training.models.config import unet_preset
    from training.models.unet import UNet

    device = torch.device(args.device)
    model = UNet(unet_preset(args.preset)).eval().to(device)
    dtypes = {"fp32": None, "bf16": torch.bfloat16} | ({"fp16": torch.float16} if device.type == "cuda" else {})
    denoiser = None
    if args.bundle or (not args.no_onnx and args.preset == "paper"):
        from bench.bench_render import paper_bundle
        from engine.api import Engine
        denoiser = Engine.load(args.bundle or paper_bundle(), device="cpu").denoiser
    print(f"U-Net preset {args.preset}, {sum(q.numel() for q in model.parameters()):,} params, device {device}")
    print("| frames | variant | ms/call | vs torch fp32 | rel. error |\n|---|---|---|---|---|")
    for frames in (int(f) for f in args.frames.split(",")):
        x = torch.randn(1, 2, 128, frames, device=device)
        t = torch.full((1,), 500.0, device=device)
        with torch.inference_mode():
            reference = model(x, t).float()
            base = None
            for name, dtype in dtypes.items():
                def call(dtype=dtype):
                    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        return model(x, t)
                seconds = time_calls(call, args.calls)
                base = base or seconds
                err = float((call().float() - reference).norm() / reference.norm())
                print(f"| {frames} | torch {name} | {seconds * 1e3:.1f} | {base / seconds:.2f}x | {err:.4f} |")
            if device.type == "cuda":  # tensor cores prefer NHWC: worth wiring into the backend if it wins here
                model_cl = model.to(memory_format=torch.channels_last)
                x_cl = x.contiguous(memory_format=torch.channels_last)

                def call_cl():
                    with torch.autocast("cuda", dtype=torch.float16):
                        return model_cl(x_cl, t)
                seconds = time_calls(call_cl, args.calls)
                err = float((call_cl().float() - reference).norm() / reference.norm())
                print(f"| {frames} | torch fp16 channels_last | {seconds * 1e3:.1f} | {base / seconds:.2f}x "
                      f"| {err:.4f} |")
                model.to(memory_format=torch.contiguous_format)
            if args.cuda_graphs and device.type == "cuda":
                static_x, static_t = x.clone(), t.clone()
                graph = torch.cuda.CUDAGraph()
                # torch's recipe: warm up on a side stream, then capture; autocast's weight cache off, as graph
                # capture requires.
                with torch.autocast("cuda", dtype=torch.float16, cache_enabled=False):
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        for _ in range(3):
                            model(static_x, static_t)
                    torch.cuda.current_stream().wait_stream(side)
                    with torch.cuda.graph(graph):
                        static_out = model(static_x, static_t)
                seconds = time_calls(graph.replay, args.calls)
                err = float((static_out.float() - reference).norm() / reference.norm())
                print(f"| {frames} | torch fp16 CUDA graph | {seconds * 1e3:.1f} | {base / seconds:.2f}x | {err:.4f} |")
        if denoiser is not None:
            xc, tc = x.cpu(), t.cpu()
            seconds = time_calls(lambda: denoiser(xc, tc), args.calls)
            print(f"| {frames} | onnxruntime CPU (engine) | {seconds * 1e3:.1f} | {base / seconds:.2f}x | (other weights) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
