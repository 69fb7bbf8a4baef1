"""Verification speed: sira's float64 execution against qonnx's own.

Run with ``make bench`` or ``python bench/verify_speed.py [--samples N]
[--save-cnn FILE]``. Not a test: it measures and prints, and exits 0.

Models: the bundled ``examples/sira_conv.onnx`` and a synthetic Brevitas-style
CNN of about 0.4 M parameters on a 3x32x32 image (:func:`cnn_32`: 8-bit
input quantizer, 4-bit weights with per-channel scales, BatchNorm, Relu,
4-bit activations, a depthwise stride-2 convolution, max pooling and two
fully connected layers), built here with onnx helpers and QONNX ``Quant``
nodes the way ``examples/build_conv.py`` builds the bundled example.

What is timed, for each model prepared once by :func:`sira.load` (not timed):

* ``sira.verify(model, spec, samples=N)``: analysis, then float64 execution
  of the corner inputs and N random inputs, every tensor checked;
* ``sira.verify_equivalent(model, model, spec, samples=N)``: the same inputs
  through two executors (the check ``sira optimize`` runs after every pass);
* qonnx: ``execute_onnx(model, feed, return_full_exec_context=True)`` on the
  very inputs ``verify_equivalent`` feeds one of its two models - the
  execution alone, no checking - once per input, as qonnx runs one input
  at a time.

The ratio column is qonnx's time over sira's. ``verify_equivalent`` executes
twice as many inputs as the qonnx column, so its ratio understates the
execution speed-up by a factor of two. ``verify`` also checks every value of
every tensor against its range, which takes longer than executing them.

sira's products run in numpy's BLAS, which uses every core by default; on a
machine busy with other work its threads wait for each other and one thread
is faster (``OPENBLAS_NUM_THREADS=1 python bench/verify_speed.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import sira  # noqa: E402
from quant_nodes import qonnx_model, quant  # noqa: E402
from sira.model import quiet  # noqa: E402
from sira.verification import corner_inputs, random_input  # noqa: E402

CONV_EXAMPLE = ROOT / "examples" / "sira_conv.onnx"
CONV_SPEC = ROOT / "examples" / "sira_conv.spec.json"
PIXELS = {"pixels": {"datatype": "UINT8", "scale": "1/255"}}

#: (output channels, kernel, stride, group, max-pool after) of the conv layers of :func:`cnn_32`
CNN_LAYERS = (
    (32, 3, 1, 1, False),
    (32, 3, 1, 1, True),
    (64, 3, 1, 1, False),
    (64, 3, 1, 1, True),
    (64, 3, 2, 64, False),
    (128, 1, 1, 1, False),
    (128, 3, 1, 1, False),
)
CNN_HIDDEN = 96
CNN_CLASSES = 10


def _weight_quant(w: np.ndarray, channel_axis: int, inits: dict, prefix: str):
    """A float weight behind a signed narrow 4-bit Quant with one scale per
    output channel: (node, quantized tensor name)."""
    reduce_axes = tuple(i for i in range(w.ndim) if i != channel_axis)
    scale = (np.abs(w).max(axis=reduce_axes, keepdims=True) / 7.0).astype(np.float32)
    inits[f"{prefix}_w"] = w.astype(np.float32)
    return quant(f"{prefix}_w", f"{prefix}_wq", scale, 4, True, True, inits, f"{prefix}_wquant"), f"{prefix}_wq"


def _batchnorm(x: str, channels: int, rng: np.random.Generator, inits: dict, prefix: str):
    for part, value in (
        ("gamma", rng.uniform(0.5, 1.5, channels)),
        ("beta", rng.normal(0.0, 0.2, channels)),
        ("mean", rng.normal(0.0, 0.5, channels)),
        ("var", rng.uniform(0.5, 2.0, channels)),
    ):
        inits[f"{prefix}_{part}"] = value.astype(np.float32)
    ins = [x] + [f"{prefix}_{p}" for p in ("gamma", "beta", "mean", "var")]
    return helper.make_node("BatchNormalization", ins, [f"{prefix}_out"], name=prefix, epsilon=1e-5)


def cnn_32(seed: int = 0) -> onnx.ModelProto:
    """A quantized CNN for 3x32x32 images with about 0.4 M parameters, as a
    Brevitas export of it looks (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], {}
    nodes.append(quant("pixels", "x0", 1.0 / 255.0, 8, False, False, inits, "input_quant"))
    x, c_in, size = "x0", 3, 32
    for i, (c_out, k, stride, group, pool) in enumerate(CNN_LAYERS):
        w = rng.normal(0.0, np.sqrt(2.0 / (k * k * c_in // group)), size=(c_out, c_in // group, k, k))
        wq_node, wq = _weight_quant(w, 0, inits, f"conv{i}")
        pad = k // 2
        nodes += [
            wq_node,
            helper.make_node("Conv", [x, wq], [f"conv{i}_out"], name=f"conv{i}", kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2, group=group),
            _batchnorm(f"conv{i}_out", c_out, rng, inits, f"bn{i}"),
            helper.make_node("Relu", [f"bn{i}_out"], [f"relu{i}_out"], name=f"relu{i}"),
            quant(f"relu{i}_out", f"act{i}", 0.25, 4, False, False, inits, f"act{i}_quant"),
        ]
        x, c_in, size = f"act{i}", c_out, size // stride
        if pool:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"], name=f"maxpool{i}", kernel_shape=[2, 2], strides=[2, 2]))
            x, size = f"pool{i}", size // 2
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
    x, width = "flat", c_in * size * size
    for j, (n_out, last) in enumerate(((CNN_HIDDEN, False), (CNN_CLASSES, True))):
        w = rng.normal(0.0, 1.0 / np.sqrt(width), size=(width, n_out))
        wq_node, wq = _weight_quant(w, 1, inits, f"fc{j}")
        inits[f"fc{j}_bias"] = rng.normal(0.0, 0.1, n_out).astype(np.float32)
        nodes += [
            wq_node,
            helper.make_node("MatMul", [x, wq], [f"fc{j}_acc"], name=f"fc{j}"),
            helper.make_node("Add", [f"fc{j}_acc", f"fc{j}_bias"], [f"fc{j}_out"], name=f"fc{j}_bias_add"),
        ]
        x = f"fc{j}_out"
        if not last:
            nodes += [
                helper.make_node("Relu", [x], [f"fc{j}_relu"], name=f"fc{j}_relu"),
                quant(f"fc{j}_relu", f"fc{j}_act", 0.25, 4, False, False, inits, f"fc{j}_act_quant"),
            ]
            x = f"fc{j}_act"
        width = n_out
    return qonnx_model("cnn_32", nodes, {"pixels": [1, 3, 32, 32]}, {x: [1, CNN_CLASSES]}, inits)


def parameter_count(model) -> int:
    """Weights and biases of the MAC layers (the float initializers that a
    Quant or an Add reads, BatchNorm statistics excluded)."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.name.endswith(("_w", "_bias")))


def timed(fn):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    with quiet():
        result = fn()
    return time.perf_counter() - start, result


def qonnx_feeds(model, spec, samples: int, seed: int = 0) -> list[dict]:
    """The inputs ``verify_equivalent`` executes (same seed, same order), in
    float32 as qonnx's execution takes them."""
    report = sira.analyze(model, spec)
    rng = np.random.default_rng(seed)
    feeds = [feed for _label, feed in corner_inputs(report, rng)]
    feeds += [{n: random_input(r, n, rng) for n, r in report.input_ranges.items()} for _ in range(samples)]
    return [{n: np.asarray(v, dtype=np.float32) for n, v in feed.items()} for feed in feeds]


def bench_model(name: str, model, spec, samples: int) -> list[tuple[str, str, int, float, float]]:
    """Rows (model, check, inputs, sira seconds, qonnx seconds)."""
    from qonnx.core.onnx_exec import execute_onnx

    feeds = qonnx_feeds(model, spec, samples)
    qonnx_s, _ = timed(lambda: [execute_onnx(model, feed, return_full_exec_context=True) for feed in feeds])
    verify_s, result = timed(lambda: sira.verify(model, spec, samples=samples))
    if not result.ok:
        print(f"{name}: verify found {result.violation_count} violations", file=sys.stderr)
    equiv_s, _ = timed(lambda: sira.verify_equivalent(model, model, spec, samples=samples))
    return [(name, "verify", len(feeds), verify_s, qonnx_s), (name, "verify_equivalent", len(feeds), equiv_s, qonnx_s)]


def print_table(rows) -> None:
    header = ["model", "sira check", "inputs", "sira", "qonnx execute_onnx", "qonnx/sira"]
    table = [[m, check, str(n), f"{s:.2f} s", f"{q:.2f} s", f"{q / s:.1f}x"] for m, check, n, s, q in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *table)]
    for line in [header] + table:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200, help="random inputs per check, on top of the corner inputs (default 200)")
    ap.add_argument("--save-cnn", metavar="FILE", help="also write the synthetic CNN to FILE (to time `sira optimize` on it)")
    args = ap.parse_args(argv)
    cnn = cnn_32()
    if args.save_cnn:
        onnx.save(cnn, args.save_cnn)
    print(f"cnn_32: {parameter_count(cnn)} parameters, input 1x3x32x32; {args.samples} random inputs per check plus the corners")
    with quiet():
        models = [("sira_conv", sira.load(str(CONV_EXAMPLE)), str(CONV_SPEC)), ("cnn_32", sira.load(cnn), {"inputs": PIXELS})]
    rows = []
    for name, model, spec in models:
        rows += bench_model(name, model, spec, args.samples)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
