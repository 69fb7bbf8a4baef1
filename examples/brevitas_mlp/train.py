"""From training to hardware: a quantized MLP trained with Brevitas on the
8x8 digits of scikit-learn, exported to QONNX, and built by sira into a
Vitis HLS project that C simulation proves bit-exact.

    pip install -e ".[examples]"
    python examples/brevitas_mlp/train.py                 # writes examples/brevitas_mlp/out/
    python examples/brevitas_mlp/train.py OUT_DIR [--epochs N] [--seed S] [--samples N]

The network (Brevitas):

    pixels 0..16 -> uint8 grid (round(p * 255 / 16) / 255)
      -> QuantIdentity  8-bit unsigned, constant scale 1/255   (the input quantizer)
      -> QuantLinear 64->64, 4-bit weights -> QuantReLU 4-bit
      -> QuantLinear 64->32, 4-bit weights -> QuantReLU 4-bit
      -> QuantLinear 32->10, 4-bit weights                     (logits)

The digits data set ships with scikit-learn: nothing is downloaded. The
inputs the model sees lie on the grid its input quantizer uses, uint8
integers times 1/255; ``brevitas_mlp.spec.json`` tells sira so.

What it writes in the output folder:

    brevitas_mlp.onnx        the QONNX export (brevitas.export.export_qonnx)
    brevitas_mlp.spec.json   the input spec: {"datatype": "UINT8", "scale": "1/255"}
    brevitas_mlp_hls/        the HLS project sira.build made (see the top README)

The exit code is 0 only if the C simulation of the HLS project is bit-exact
against the exported model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "out")

#: pixels of the digits data set are integers 0..16
PIXEL_MAX = 16
#: the input quantizer's grid: uint8 integers times 1/255, as for camera pixels
INPUT_BITS = 8
HIDDEN = (64, 32)
WEIGHT_BITS = 4
ACT_BITS = 4


def _imports():
    """torch, Brevitas and scikit-learn, with a clear message when absent."""
    try:
        warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
        import brevitas  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"this example needs torch, brevitas and scikit-learn ({e}); install them with: pip install -e '.[examples]'")


def load_digits_uint8(seed: int):
    """(x_train, x_test, y_train, y_test): pixels mapped to the uint8 grid
    times 1/255 (float32), a stratified 75/25 split."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    q = np.round(digits.data * (255.0 / PIXEL_MAX))  # integers 0..255
    x = (q / 255.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def make_model():
    """The Brevitas MLP (see the module docstring)."""
    import torch.nn as nn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Uint8ActPerTensorFloat

    class PixelQuant(Uint8ActPerTensorFloat):
        """8-bit unsigned with the constant scale 1/255: the uint8 pixel grid."""

        scaling_impl_type = ScalingImplType.CONST
        scaling_init = 1.0

    sizes = (8 * 8, *HIDDEN)
    layers: list = [QuantIdentity(act_quant=PixelQuant, bit_width=INPUT_BITS, return_quant_tensor=True)]
    for k, n in zip(sizes[:-1], sizes[1:]):
        layers.append(QuantLinear(k, n, bias=True, weight_bit_width=WEIGHT_BITS))
        layers.append(QuantReLU(bit_width=ACT_BITS, return_quant_tensor=True))
    layers.append(QuantLinear(sizes[-1], 10, bias=True, weight_bit_width=WEIGHT_BITS))
    return nn.Sequential(*layers)


def train(model, x_train, y_train, *, epochs: int, seed: int, batch: int = 64, lr: float = 0.01) -> None:
    """Adam with a cosine schedule on shuffled mini-batches, seeded so that a
    rerun trains the same weights (the conformance zoo trains with it too)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=g).split(batch):
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()


def accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float((pred == y).mean())


def export(model, path: str) -> str:
    """QONNX export of ``model`` (torch's dynamo exporter, Brevitas' default
    on torch >= 2.9), quietly; returns the graph input's name."""
    import logging

    import onnx
    import torch
    from brevitas.export import export_qonnx

    model.eval()
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # "torchvision is not installed" notes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_qonnx(model, input_t=torch.zeros(1, 8 * 8), export_path=path, verbose=False, external_data=False)
    finally:
        onnx_log.setLevel(level)
    return onnx.load(path).graph.input[0].name


def qonnx_predictions(path: str, x):
    """Classes the exported QONNX model predicts for ``x``, executed by qonnx
    one sample at a time (the export has batch size 1)."""
    import numpy as np
    from qonnx.core.onnx_exec import execute_onnx

    import sira

    model = sira.load(path)
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return np.array([int(np.argmax(execute_onnx(model, {inp: row[None]})[out])) for row in x])


def _shown(path: str) -> str:
    """``path`` relative to the current folder when it lies below it."""
    rel = os.path.relpath(os.path.abspath(path))
    return path if rel.startswith("..") else rel


def run(out_dir: str = DEFAULT_OUT, *, epochs: int = 20, seed: int = 0, samples: int = 100, log=print) -> dict:
    """Train, export, build and C-simulate. Returns the results: ``accuracy``
    (test set, the trained torch model), ``qonnx_accuracy`` (test set, the
    exported model executed by qonnx), ``model`` and ``spec`` paths,
    ``build`` (sira's BuildResult),
    ``csim`` (its CsimResult), ``total`` and ``baseline`` (the estimate's
    totals, SIRA and FINN baseline)."""
    _imports()
    import numpy as np
    import torch

    import sira

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # a model this small trains several times faster on one thread
    os.makedirs(out_dir, exist_ok=True)

    t0 = time.perf_counter()
    x_train, x_test, y_train, y_test = load_digits_uint8(seed)
    model = make_model()
    train(model, x_train, y_train, epochs=epochs, seed=seed)
    acc = accuracy(model, x_test, y_test)
    log(f"trained {epochs} epochs on {len(x_train)} digits in {time.perf_counter() - t0:.1f} s; "
        f"test accuracy {acc:.4f} ({round(acc * len(y_test))}/{len(y_test)})")  # fmt: skip

    model_path = os.path.join(out_dir, "brevitas_mlp.onnx")
    spec_path = os.path.join(out_dir, "brevitas_mlp.spec.json")
    input_name = export(model, model_path)
    spec = {"inputs": {input_name: {"datatype": f"UINT{INPUT_BITS}", "scale": f"1/{2**INPUT_BITS - 1}"}}}
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")
    log(f"exported {_shown(model_path)}; input spec {_shown(spec_path)}: {json.dumps(spec['inputs'][input_name])}")
    pred = qonnx_predictions(model_path, x_test)
    model.eval()
    with torch.no_grad():
        same = int((pred == model(torch.from_numpy(x_test)).argmax(dim=1).numpy()).sum())
    qacc = float((pred == y_test).mean())
    log(f"QONNX model (qonnx execution): test accuracy {qacc:.4f}; same class as torch on {same}/{len(y_test)} digits")

    t1 = time.perf_counter()
    hls_dir = os.path.join(out_dir, "brevitas_mlp_hls")
    result = sira.build(model_path, hls_dir, spec_path, samples=samples, seed=seed, run_csim=True)
    est = result.project.estimate
    total, base = est["total"], est["baseline"]["total"]
    log(f"built {_shown(result.path)} (top function {result.project.top}, {len(result.project.dataflow.stages)} stages) "
        f"in {time.perf_counter() - t1:.1f} s")  # fmt: skip
    log("estimate, SIRA vs FINN baseline: " + ", ".join(f"{k} {total[k]} vs {base[k]}" for k in ("LUT", "DSP", "BRAM_18K", "URAM")))
    log(f"accumulator bits per MAC layer (mean): SIRA {total['acc_bits']} vs baseline {base['acc_bits']}")
    log(result.csim.summary() + ("" if result.csim.passed else "  FAILED"))
    return {"accuracy": acc, "qonnx_accuracy": qacc, "model": model_path, "spec": spec_path, "build": result, "csim": result.csim, "total": total, "baseline": base}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Train a Brevitas MLP on scikit-learn's digits, export QONNX, build and C-simulate it with sira.")
    p.add_argument("out_dir", nargs="?", default=DEFAULT_OUT, help=f"output folder (default {os.path.relpath(DEFAULT_OUT)})")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--samples", type=int, default=100, help="random test vectors for the C simulation (default 100)")
    args = p.parse_args(argv)
    results = run(args.out_dir, epochs=args.epochs, seed=args.seed, samples=args.samples)
    return 0 if results["csim"].passed else 1


if __name__ == "__main__":
    sys.exit(main())
