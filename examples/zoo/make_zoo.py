"""A conformance zoo of small Brevitas-trained models, exported to QONNX (and
a few to QCDQ), so that sira's tests can run on real exports without torch.

    pip install -e ".[examples]"
    python examples/zoo/make_zoo.py                        # writes examples/zoo/models/
    python examples/zoo/make_zoo.py OUT_DIR [--only NAME ...] [--epochs N]
    python examples/zoo/make_zoo.py --check [DIR]          # qonnx only, no torch needed

Every model is built with Brevitas, trained for a few epochs (on the 8x8
digits of scikit-learn, upscaled and padded where a model wants a larger
picture, or on a small synthetic keyword task for the 1-D model), exported
with ``brevitas.export.export_qonnx`` (``export_onnx_qcdq`` for the
``*_qcdq`` twins, from the same trained weights), and cleaned up with
``qonnx.util.cleanup.cleanup_model``. Accuracy is not the point: the models
carry realistic trained weights, BatchNorm statistics and learned scales.

For each model NAME the output folder gets:

    NAME.onnx        the cleaned-up export (batch size 1)
    NAME.io.npz      inputs  [8, *input shape]  float32, 8 test samples on the
                              grid of the model's input quantizer
                     outputs [8, *output shape] float32, what
                              qonnx.core.onnx_exec.execute_onnx gives on them
    NAME.spec.json   the input spec for sira (the input quantizer's grid)

``--check`` re-executes every model of a folder on its stored inputs with
qonnx and checks that the stored outputs come back bit for bit; it prints a
line per model (file size, nodes, op types).

Everything is seeded per model (the seed is derived from the model's name),
torch runs deterministic algorithms on one thread, so ``--only`` makes the
same file as a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
import zlib
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
# the training loop is the Brevitas MLP example's own
sys.path.insert(0, os.path.join(HERE, "..", "brevitas_mlp"))
from train import accuracy, train  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "models")

#: pixels of the digits data set are integers 0..16
PIXEL_MAX = 16
#: sample inputs stored per model
N_SAMPLES = 8

# --------------------------------------------------------------------------
# data


def digits(seed: int, *, size: int = 8, pad: int = 0, channels: int = 0, fixed_point: bool = False):
    """(x_train, x_test, y_train, y_test) of scikit-learn's digits, float32.

    Pixels go to the uint8 grid (``round(p * 255 / 16) / 255``), or with
    ``fixed_point`` to ``p / 16`` (a power-of-two grid). ``size`` upscales
    the 8x8 picture by pixel repetition, ``pad`` adds zeros around it;
    ``channels=0`` keeps the flat vector of 64 pixels, ``channels=C`` gives
    [N, C, H, W] with C tinted copies (channel c scaled by (C - c) / C and
    put back on the grid)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    img = d.images.astype(np.float64) / PIXEL_MAX  # [N, 8, 8] in 0..1
    if channels == 0:
        x = img.reshape(len(img), 64)
    else:
        k = size // 8
        img = np.kron(img, np.ones((k, k)))
        if pad:
            img = np.pad(img, ((0, 0), (pad, pad), (pad, pad)))
        x = np.stack([img * (channels - c) / channels for c in range(channels)], axis=1)
    x = np.round(x * 16) / 16 if fixed_point else np.round(x * 255) / 255
    y = d.target.astype(np.int64)
    return train_test_split(x.astype(np.float32), y, test_size=0.25, random_state=seed, stratify=y)


def keywords(seed: int, *, channels: int = 10, steps: int = 32, classes: int = 4, n: int = 1600):
    """A synthetic keyword-spotting task: [N, channels, steps] "feature
    frames" in [-1, 1) on the grid k/128, each class a smooth template of its
    own, shifted in time and scaled, plus noise."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    templates = []
    for _ in range(classes):
        f = rng.uniform(0.05, 0.3, size=(channels, 1))
        ph = rng.uniform(0, 2 * np.pi, size=(channels, 1))
        env = np.exp(-0.5 * ((t - steps / 2) / (steps / 6)) ** 2)
        templates.append(0.6 * np.sin(2 * np.pi * f * t + ph) * env)
    y = rng.integers(0, classes, size=n)
    x = np.empty((n, channels, steps))
    for i, c in enumerate(y):
        shift = rng.integers(-steps // 6, steps // 6 + 1)
        x[i] = np.roll(templates[c], shift, axis=1) * rng.uniform(0.7, 1.3) + rng.normal(0, 0.15, size=(channels, steps))
    x = np.clip(np.round(x * 128), -128, 127) / 128
    return train_test_split(x.astype(np.float32), y.astype(np.int64), test_size=0.25, random_state=seed, stratify=y)


# --------------------------------------------------------------------------
# Brevitas building blocks


def _brevitas():
    """torch, Brevitas and scikit-learn, with a clear message when absent."""
    try:
        warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
        import brevitas  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"make_zoo.py needs torch, brevitas and scikit-learn ({e}); install them with: pip install -e '.[examples]'")


def pixel_quant(*, return_quant_tensor: bool = False):
    """The input quantizer of the picture models: 8-bit unsigned with the
    constant scale 1/255, the uint8 pixel grid."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Uint8ActPerTensorFloat

    class PixelQuant(Uint8ActPerTensorFloat):
        scaling_impl_type = ScalingImplType.CONST
        scaling_init = 1.0

    return QuantIdentity(act_quant=PixelQuant, bit_width=8, return_quant_tensor=return_quant_tensor)


def frame_quant():
    """The input quantizer of the 1-D model: 8-bit signed with the constant
    scale 1/128 (values k/128, k in -128..127)."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Int8ActPerTensorFloat

    class FrameQuant(Int8ActPerTensorFloat):
        scaling_impl_type = ScalingImplType.CONST
        scaling_init = 1.0

    return QuantIdentity(act_quant=FrameQuant, bit_width=8)


def conv_bn(cin, cout, k, *, stride=1, padding=None, groups=1, wbits=4, weight_quant=None, dims=2):
    """QuantConv (no bias) followed by BatchNorm."""
    import torch.nn as nn
    from brevitas.nn import QuantConv1d, QuantConv2d

    kw = {"weight_bit_width": wbits}
    if weight_quant is not None:
        kw["weight_quant"] = weight_quant
    conv = (QuantConv2d if dims == 2 else QuantConv1d)(
        cin, cout, k, stride=stride, padding=k // 2 if padding is None else padding, groups=groups, bias=False, **kw
    )
    return nn.Sequential(conv, nn.BatchNorm2d(cout) if dims == 2 else nn.BatchNorm1d(cout))


def binary_act():
    """1-bit activation: sign, values -1/+1 (exports as BipolarQuant)."""
    from brevitas.nn import QuantIdentity
    from brevitas.quant.binary import SignedBinaryActPerTensorConst

    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


# --------------------------------------------------------------------------
# the models


def make_cnv(wbits: int, abits: int):
    """CNV-style: 3x16x16 -> 4x (conv3x3 + BN + act), 2 max pools -> FC 256
    -> 32 -> 10 with BN. 1-bit: binary weights and activations (BipolarQuant);
    otherwise signed QuantIdentity activations. Input quantizer 8-bit."""
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant.binary import SignedBinaryWeightPerTensorConst

    wq = SignedBinaryWeightPerTensorConst if wbits == 1 else None

    def act():
        return binary_act() if abits == 1 else QuantIdentity(bit_width=abits)

    def fc(k, n):
        kw = {"weight_quant": wq} if wq is not None else {}
        return QuantLinear(k, n, bias=False, weight_bit_width=wbits, **kw)

    return nn.Sequential(
        pixel_quant(),
        conv_bn(3, 8, 3, wbits=wbits, weight_quant=wq), act(),
        conv_bn(8, 8, 3, wbits=wbits, weight_quant=wq), act(),
        nn.MaxPool2d(2),
        conv_bn(8, 16, 3, wbits=wbits, weight_quant=wq), act(),
        conv_bn(16, 16, 3, wbits=wbits, weight_quant=wq), act(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        fc(16 * 4 * 4, 32), nn.BatchNorm1d(32), act(),
        fc(32, 10), nn.BatchNorm1d(10),
    )  # fmt: skip


def make_lenet():
    """LeNet-5-style on 1x28x28 (8x8 digits upscaled 3x, padded by 2):
    conv5x5 6 + ReLU, max pool, conv5x5 16 + ReLU, max pool -> [16, 4, 4]
    -> Flatten (256) -> FC 32 -> FC 10. 4-bit weights and activations."""
    import torch.nn as nn
    from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU

    return nn.Sequential(
        pixel_quant(),
        QuantConv2d(1, 6, 5, bias=True, weight_bit_width=4), QuantReLU(bit_width=4),
        nn.MaxPool2d(2),
        QuantConv2d(6, 16, 5, bias=True, weight_bit_width=4), QuantReLU(bit_width=4),
        nn.MaxPool2d(2),
        nn.Flatten(),
        QuantLinear(16 * 4 * 4, 32, bias=True, weight_bit_width=4), QuantReLU(bit_width=4),
        QuantLinear(32, 10, bias=True, weight_bit_width=4),
    )  # fmt: skip


def make_resnet8(bits: int):
    """ResNet-8-style on 3x16x16: stem conv, three basic blocks (8, 16, 32
    channels; the last two with stride 2 and a 1x1 stride-2 projection
    shortcut), global average pool, FC 10. Each residual add joins two
    branches with quantizers of their own (different learned scales)."""
    import torch
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = conv_bn(cin, cout, 3, stride=stride, wbits=bits)
            self.relu1 = QuantReLU(bit_width=bits)
            self.conv2 = conv_bn(cout, cout, 3, wbits=bits)
            self.q_main = QuantIdentity(bit_width=bits)  # the main branch's scale
            self.shortcut = conv_bn(cin, cout, 1, stride=stride, wbits=bits) if stride != 1 or cin != cout else nn.Identity()
            self.q_short = QuantIdentity(bit_width=bits)  # the shortcut's own scale
            self.relu_out = QuantReLU(bit_width=bits)

        def forward(self, x):
            y = self.q_main(self.conv2(self.relu1(self.conv1(x))))
            return self.relu_out(y + self.q_short(self.shortcut(x)))

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = pixel_quant()
            self.stem = conv_bn(3, 8, 3, wbits=bits)
            self.stem_relu = QuantReLU(bit_width=bits)
            self.blocks = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2), Block(16, 32, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.q_pool = QuantIdentity(bit_width=bits)
            self.fc = QuantLinear(32, 10, bias=True, weight_bit_width=bits)

        def forward(self, x):
            x = self.blocks(self.stem_relu(self.stem(self.inp(x))))
            return self.fc(self.q_pool(torch.flatten(self.pool(x), 1)))

    return ResNet8()


def make_mobilenet():
    """MobileNet-v1-style on 3x16x16: stem conv, three depthwise-separable
    blocks (depthwise 3x3 with groups = channels + BN + ReLU, pointwise 1x1
    + BN + ReLU), TruncAvgPool2d over the whole 4x4 map, FC 10. 4-bit."""
    import torch.nn as nn
    from brevitas.nn import QuantLinear, QuantReLU, TruncAvgPool2d

    def ds(cin, cout, stride, last=False):
        return [
            conv_bn(cin, cin, 3, stride=stride, groups=cin, wbits=4), QuantReLU(bit_width=4),
            conv_bn(cin, cout, 1, wbits=4), QuantReLU(bit_width=4, return_quant_tensor=last),
        ]  # fmt: skip

    return nn.Sequential(
        pixel_quant(),
        conv_bn(3, 8, 3, wbits=4), QuantReLU(bit_width=4),
        *ds(8, 16, 1), *ds(16, 32, 2), *ds(32, 32, 2, last=True),
        TruncAvgPool2d(kernel_size=4, stride=4),
        nn.Flatten(),
        QuantLinear(32, 10, bias=True, weight_bit_width=4),
    )  # fmt: skip


def make_avgpool():
    """Non-global average pooling on 1x16x16: conv + BN + ReLU, nn.AvgPool2d(2, 2)
    then a QuantIdentity; conv + BN + ReLU, TruncAvgPool2d(2, 2); FC 10."""
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU, TruncAvgPool2d

    return nn.Sequential(
        pixel_quant(),
        conv_bn(1, 8, 3, wbits=4), QuantReLU(bit_width=4),
        nn.AvgPool2d(2, 2), QuantIdentity(bit_width=4),
        conv_bn(8, 16, 3, wbits=4), QuantReLU(bit_width=4, return_quant_tensor=True),
        TruncAvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        QuantLinear(16 * 4 * 4, 10, bias=True, weight_bit_width=4),
    )  # fmt: skip


def make_inception():
    """Inception-style on 3x16x16: stem conv, then three parallel branches
    (1x1 conv, 3x3 conv, 3x3 max pool), each with its own output quantizer,
    concatenated on channels; conv 3x3 stride 2, global average pool, FC 10."""
    import torch
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU

    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = pixel_quant()
            self.stem = nn.Sequential(conv_bn(3, 8, 3, wbits=4), QuantReLU(bit_width=4))
            self.b1 = nn.Sequential(conv_bn(8, 8, 1, wbits=4), QuantReLU(bit_width=4))
            self.b3 = nn.Sequential(conv_bn(8, 8, 3, wbits=4), QuantReLU(bit_width=4))
            self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), QuantIdentity(bit_width=4))
            self.mix = nn.Sequential(conv_bn(24, 16, 3, stride=2, wbits=4), QuantReLU(bit_width=4))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.q_pool = QuantIdentity(bit_width=4)
            self.fc = QuantLinear(16, 10, bias=True, weight_bit_width=4)

        def forward(self, x):
            x = self.stem(self.inp(x))
            x = torch.cat([self.b1(x), self.b3(x), self.bp(x)], dim=1)
            return self.fc(self.q_pool(torch.flatten(self.pool(self.mix(x)), 1)))

    return Inception()


def make_silu_se():
    """SiLU and squeeze-excite on 3x16x16: conv + BN + SiLU (x * sigmoid(x))
    + quantizer twice, then the gate x * sigmoid(fc(relu(fc(gap(x))))) with
    quantizers around it (the gate itself on an unsigned 4-bit grid), global
    average pool, FC 10. 4-bit."""
    import torch
    import torch.nn as nn
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant import Uint8ActPerTensorFloat

    class SiLUSE(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = pixel_quant()
            self.c1, self.q1 = conv_bn(3, 16, 3, wbits=4), QuantIdentity(bit_width=4)
            self.c2, self.q2 = conv_bn(16, 16, 3, stride=2, wbits=4), QuantIdentity(bit_width=4)
            self.q_sq = QuantIdentity(bit_width=4)
            self.se1 = QuantConv2d(16, 4, 1, bias=True, weight_bit_width=4)
            self.se_relu = QuantReLU(bit_width=4)
            self.se2 = QuantConv2d(4, 16, 1, bias=True, weight_bit_width=4)
            self.q_gate = QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=4)
            self.q_out = QuantIdentity(bit_width=4)
            self.q_pool = QuantIdentity(bit_width=4)
            self.fc = QuantLinear(16, 10, bias=True, weight_bit_width=4)

        @staticmethod
        def silu(x):
            return x * torch.sigmoid(x)

        def forward(self, x):
            x = self.q1(self.silu(self.c1(self.inp(x))))
            x = self.q2(self.silu(self.c2(x)))
            s = self.q_sq(torch.mean(x, dim=(2, 3), keepdim=True))
            g = self.q_gate(torch.sigmoid(self.se2(self.se_relu(self.se1(s)))))
            x = self.q_out(x * g)
            return self.fc(self.q_pool(torch.mean(x, dim=(2, 3))))

    return SiLUSE()


def make_kws1d():
    """Keyword-spotting-style 1-D CNN on [1, 10, 32] frames: three QuantConv1d
    (k=3, two with stride 2) + BN + ReLU, global average pool, FC 4.
    3-bit weights and activations, 8-bit signed input."""
    import torch
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU

    class KWS(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = frame_quant()
            self.body = nn.Sequential(
                conv_bn(10, 16, 3, wbits=3, dims=1), QuantReLU(bit_width=3),
                conv_bn(16, 16, 3, stride=2, wbits=3, dims=1), QuantReLU(bit_width=3),
                conv_bn(16, 24, 3, stride=2, wbits=3, dims=1), QuantReLU(bit_width=3),
            )  # fmt: skip
            self.q_pool = QuantIdentity(bit_width=3)
            self.fc = QuantLinear(24, 4, bias=True, weight_bit_width=3)

        def forward(self, x):
            return self.fc(self.q_pool(torch.mean(self.body(self.inp(x)), dim=2)))

    return KWS()


def make_squash_mlp(kind: str):
    """MLP 64 -> 32 -> 32 -> 10 with 4-bit weights whose hidden activations
    are Sigmoid (then an unsigned 4-bit quantizer) or Tanh (then a signed
    4-bit quantizer)."""
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear
    from brevitas.quant import Uint8ActPerTensorFloat

    def act():
        if kind == "sigmoid":
            return [nn.Sigmoid(), QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=4)]
        return [nn.Tanh(), QuantIdentity(bit_width=4)]

    return nn.Sequential(
        pixel_quant(),
        QuantLinear(64, 32, bias=True, weight_bit_width=4), *act(),
        QuantLinear(32, 32, bias=True, weight_bit_width=4), *act(),
        QuantLinear(32, 10, bias=True, weight_bit_width=4),
    )  # fmt: skip


def make_a2q_mlp():
    """MLP 64 -> 64 -> 32 -> 10 with accumulator-aware 4-bit weights: A2Q
    (Int8AccumulatorAwareWeightQuant) in the first and last layer, A2Q+
    (Int8AccumulatorAwareZeroCenterWeightQuant) in the middle one, each for
    a 16-bit accumulator. A2Q needs the input's bit width and sign, so every
    layer gets a QuantTensor."""
    import torch.nn as nn
    from brevitas.nn import QuantLinear, QuantReLU
    from brevitas.quant.scaled_int import Int8AccumulatorAwareWeightQuant, Int8AccumulatorAwareZeroCenterWeightQuant

    def fc(k, n, wq):
        return QuantLinear(k, n, bias=True, weight_quant=wq, weight_bit_width=4, weight_accumulator_bit_width=16)

    return nn.Sequential(
        pixel_quant(return_quant_tensor=True),
        fc(64, 64, Int8AccumulatorAwareWeightQuant), QuantReLU(bit_width=4, return_quant_tensor=True),
        fc(64, 32, Int8AccumulatorAwareZeroCenterWeightQuant), QuantReLU(bit_width=4, return_quant_tensor=True),
        fc(32, 10, Int8AccumulatorAwareWeightQuant),
    )  # fmt: skip


def make_mlp_perchannel():
    """MLP 64 -> 64 -> 32 -> 10, 8-bit weights with per-output-channel
    scales (Int8WeightPerChannelFloat), 8-bit ReLU activations."""
    import torch.nn as nn
    from brevitas.nn import QuantLinear, QuantReLU
    from brevitas.quant import Int8WeightPerChannelFloat

    def fc(k, n):
        return QuantLinear(k, n, bias=True, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=8)

    return nn.Sequential(
        pixel_quant(),
        fc(64, 64), QuantReLU(bit_width=8),
        fc(64, 32), QuantReLU(bit_width=8),
        fc(32, 10),
    )  # fmt: skip


def make_cnn_perchannel():
    """CNN on 1x16x16: two (conv3x3 + BN + ReLU + max pool), FC 256 -> 10;
    8-bit weights with per-output-channel scales, 8-bit activations."""
    import torch.nn as nn
    from brevitas.nn import QuantLinear, QuantReLU
    from brevitas.quant import Int8WeightPerChannelFloat

    wq = Int8WeightPerChannelFloat
    return nn.Sequential(
        pixel_quant(),
        conv_bn(1, 8, 3, wbits=8, weight_quant=wq), QuantReLU(bit_width=8), nn.MaxPool2d(2),
        conv_bn(8, 16, 3, wbits=8, weight_quant=wq), QuantReLU(bit_width=8), nn.MaxPool2d(2),
        nn.Flatten(),
        QuantLinear(16 * 4 * 4, 10, bias=True, weight_quant=wq, weight_bit_width=8),
    )  # fmt: skip


def make_mlp_fixedpoint():
    """MLP 64 -> 64 -> 32 -> 10 with power-of-two scales everywhere: the
    input on the grid p/16 through an 8-bit unsigned fixed-point quantizer,
    Int8WeightPerTensorFixedPoint weights, Uint8ActPerTensorFixedPoint ReLUs
    and an Int8ActPerTensorFixedPoint quantizer before the last layer."""
    import torch.nn as nn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Uint8ActPerTensorFixedPoint

    class InputFixedPoint(Uint8ActPerTensorFixedPoint):
        """uint8 with the constant scale 2^-7: 0 .. 255/128"""

        scaling_impl_type = ScalingImplType.CONST
        scaling_init = 2.0

    def fc(k, n):
        return QuantLinear(k, n, bias=True, weight_quant=Int8WeightPerTensorFixedPoint)

    return nn.Sequential(
        QuantIdentity(act_quant=InputFixedPoint),
        fc(64, 64), QuantReLU(act_quant=Uint8ActPerTensorFixedPoint),
        fc(64, 32), QuantReLU(act_quant=Uint8ActPerTensorFixedPoint),
        QuantIdentity(act_quant=Int8ActPerTensorFixedPoint),
        fc(32, 10),
    )  # fmt: skip


#: data sets: name -> (loader keyword arguments, input spec)
UINT8_SPEC = {"datatype": "UINT8", "scale": "1/255"}
DATA = {
    "flat": ({}, UINT8_SPEC),
    "flat_p2": ({"fixed_point": True}, {"datatype": "UINT8", "scale": "1/128"}),
    "gray16": ({"size": 16, "channels": 1}, UINT8_SPEC),
    "rgb16": ({"size": 16, "channels": 3}, UINT8_SPEC),
    "lenet28": ({"size": 24, "pad": 2, "channels": 1}, UINT8_SPEC),
    "kws": (None, {"datatype": "INT8", "scale": "1/128"}),
}

#: families: one trained model each, exported as [(name, "qonnx" | "qcdq")]
FAMILIES = [
    # (family, builder, data, epochs, exports)
    ("cnv_w1a1", lambda: make_cnv(1, 1), "rgb16", 6, [("cnv_w1a1", "qonnx")]),
    ("cnv_w2a2", lambda: make_cnv(2, 2), "rgb16", 4, [("cnv_w2a2", "qonnx")]),
    ("lenet_w4a4", make_lenet, "lenet28", 4, [("lenet_w4a4", "qonnx")]),
    ("resnet8_w4a4", lambda: make_resnet8(4), "rgb16", 4, [("resnet8_w4a4", "qonnx")]),
    ("resnet8_w8a8", lambda: make_resnet8(8), "rgb16", 4, [("resnet8_w8a8", "qonnx"), ("resnet8_w8a8_qcdq", "qcdq")]),
    ("mobilenet_w4a4", make_mobilenet, "rgb16", 4, [("mobilenet_w4a4", "qonnx")]),
    ("avgpool_w4a4", make_avgpool, "gray16", 4, [("avgpool_w4a4", "qonnx")]),
    ("inception_w4a4", make_inception, "rgb16", 4, [("inception_w4a4", "qonnx")]),
    ("silu_se_w4a4", make_silu_se, "rgb16", 4, [("silu_se_w4a4", "qonnx")]),
    ("kws1d_w3a3", make_kws1d, "kws", 6, [("kws1d_w3a3", "qonnx")]),
    ("sigmoid_mlp_w4a4", lambda: make_squash_mlp("sigmoid"), "flat", 10, [("sigmoid_mlp_w4a4", "qonnx")]),
    ("tanh_mlp_w4a4", lambda: make_squash_mlp("tanh"), "flat", 10, [("tanh_mlp_w4a4", "qonnx")]),
    ("a2q_mlp_w4a4", make_a2q_mlp, "flat", 10, [("a2q_mlp_w4a4", "qonnx")]),
    ("mlp_w8a8_perchannel", make_mlp_perchannel, "flat", 10,
     [("mlp_w8a8_perchannel", "qonnx"), ("mlp_w8a8_perchannel_qcdq", "qcdq")]),
    ("cnn_w8a8_perchannel", make_cnn_perchannel, "gray16", 4,
     [("cnn_w8a8_perchannel", "qonnx"), ("cnn_w8a8_perchannel_qcdq", "qcdq")]),
    ("mlp_fixedpoint", make_mlp_fixedpoint, "flat_p2", 10, [("mlp_fixedpoint", "qonnx")]),
]  # fmt: skip

MODEL_NAMES = [name for fam in FAMILIES for name, _ in fam[4]]


def load_data(data: str, seed: int):
    kw, _ = DATA[data]
    return keywords(seed) if kw is None else digits(seed, **kw)


# --------------------------------------------------------------------------
# train, export, clean up, record


def input_aware_weights(model, sample) -> list:
    """(weight parameter, quantized weight, scale) as numpy arrays for every
    layer whose weight quantizer needs the layer's input (A2Q, A2Q+), taken
    on a forward pass over ``sample`` in eval mode."""
    import torch

    seen = []

    def hook(layer, args):
        qw = layer.quant_weight(quant_input=args[0])
        seen.append((layer.weight.detach().numpy().copy(), qw.value.detach().numpy(), qw.scale.detach().numpy()))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if getattr(getattr(m, "weight_quant", None), "requires_quant_input", False)]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.from_numpy(sample))
    finally:
        for h in handles:
            h.remove()
    return seen


def bake_weights(model, fixes: list) -> int:
    """Put the quantized weights of ``fixes`` (see input_aware_weights) into
    the exported ``model``'s weight Quant nodes in place of the weight
    parameters. Brevitas 0.13.4's QONNX export of A2Q / A2Q+ weights writes
    the unnormalized weight parameter into the Quant node (the handler
    ignores the norm g / ||v|| and the round-to-zero that the quantizer
    applies), so the exported graph would not compute what the trained model
    does. With the quantized weights (integers times the scale) the Quant
    node, which rounds to nearest, gives them back exactly. Returns the
    number of Quant nodes changed."""
    import numpy as np
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    done = 0
    for node in model.graph.node:
        if node.op_type != "Quant" or node.input[0] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[0]])
        for raw, value, scale in fixes:
            if w.shape == raw.shape and np.array_equal(w, raw):
                inits[node.input[0]].CopyFrom(numpy_helper.from_array(value.astype(np.float32), node.input[0]))
                s = numpy_helper.to_array(inits[node.input[1]])
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(scale.astype(np.float32).reshape(s.shape), node.input[1]))
                done += 1
                break
    return done


def export(model, sample, path: str, fmt: str) -> None:
    """``export_qonnx`` or ``export_onnx_qcdq`` of ``model`` (eval mode, one
    self-contained file), quietly, then qonnx's cleanup in place."""
    import logging

    import torch
    from brevitas.export import export_onnx_qcdq, export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    model.eval()
    fn = export_qonnx if fmt == "qonnx" else export_onnx_qcdq
    # torch.onnx's notes, and onnxscript's report of an opset conversion it
    # leaves to onnx (which keeps the model as it is)
    logs = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(model, input_t=torch.from_numpy(sample), export_path=path, verbose=False, external_data=False)
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)
    fixes = input_aware_weights(model, sample)
    model = cleanup_model(ModelWrapper(path)).model
    if fixes and bake_weights(model, fixes) != len(fixes):
        raise RuntimeError("not every accumulator-aware weight was found in the export")
    # the exporter's notes on each node (module names, source file paths and
    # lines of the exporting machine) carry nothing the graph needs
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    ModelWrapper(model).save(path)


def execute(path: str, inputs):
    """qonnx's execution of the model at ``path`` on each of ``inputs``
    (one sample at a time, float32), stacked."""
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = ModelWrapper(path)
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return np.stack([np.asarray(execute_onnx(model, {inp: x.astype(np.float32)})[out], dtype=np.float32) for x in inputs])


def make_family(fam, out_dir: str, *, names, epochs=None, log=print) -> list:
    import numpy as np
    import torch

    family, builder, data, default_epochs, exports = fam
    seed = zlib.crc32(family.encode()) % 10_000
    torch.manual_seed(seed)
    np.random.seed(seed)
    t0 = time.perf_counter()
    x_train, x_test, y_train, y_test = load_data(data, seed)
    model = builder()
    n_epochs = default_epochs if epochs is None else epochs
    train(model, x_train, y_train, epochs=n_epochs, seed=seed)
    acc = accuracy(model, x_test, y_test)
    log(f"{family}: trained {n_epochs} epochs on {len(x_train)} samples in {time.perf_counter() - t0:.1f} s, test accuracy {acc:.3f}")

    pick = np.random.default_rng(seed).choice(len(x_test), size=N_SAMPLES, replace=False)
    inputs = x_test[np.sort(pick)][:, None]  # [8, 1, ...]: each one a model input
    with torch.no_grad():
        ref = model(torch.from_numpy(inputs[:, 0])).numpy()
    done = []
    for name, fmt in exports:
        if name not in names:
            continue
        path = os.path.join(out_dir, f"{name}.onnx")
        try:
            export(model, inputs[0], path, fmt)
            outputs = execute(path, inputs)
        except Exception as e:  # noqa: BLE001 - recorded, the other models go on
            log(f"{name}: FAILED ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            if os.path.exists(path):
                os.remove(path)
            continue
        np.savez_compressed(os.path.join(out_dir, f"{name}.io.npz"), inputs=inputs, outputs=outputs)
        inp_name = _graph_io(path)[0]
        with open(os.path.join(out_dir, f"{name}.spec.json"), "w") as f:
            json.dump({"inputs": {inp_name: DATA[data][1]}}, f, indent=2)
            f.write("\n")
        diff = float(np.max(np.abs(outputs[:, 0] - ref)))
        log(f"{name}: {fmt} export {os.path.getsize(path) / 1024:.1f} KB, {_op_summary(path)}; max |qonnx - torch| = {diff:.3g}")
        done.append(name)
    return done


# --------------------------------------------------------------------------
# checking a folder without torch


def _graph_io(path: str):
    import onnx

    g = onnx.load(path).graph
    return g.input[0].name, g.output[0].name


def _op_summary(path: str) -> str:
    import onnx

    ops = Counter(n.op_type for n in onnx.load(path).graph.node)
    return " ".join(f"{op}x{k}" if k > 1 else op for op, k in sorted(ops.items()))


def check(folder: str, names=None, log=print) -> int:
    """Re-execute every NAME.onnx of ``folder`` on NAME.io.npz's inputs;
    0 if every model reproduces its stored outputs bit for bit."""
    import numpy as np

    found = sorted(f[: -len(".onnx")] for f in os.listdir(folder) if f.endswith(".onnx"))
    bad = 0
    for name in found:
        if names and name not in names:
            continue
        path = os.path.join(folder, f"{name}.onnx")
        io = np.load(os.path.join(folder, f"{name}.io.npz"))
        got = execute(path, io["inputs"])
        same = got.shape == io["outputs"].shape and got.dtype == io["outputs"].dtype and bool(np.array_equal(got, io["outputs"]))
        bad += not same
        shape = "x".join(map(str, io["inputs"].shape[1:]))
        log(f"{name:28s} {os.path.getsize(path) / 1024:7.1f} KB  in {shape:10s} {'exact' if same else 'MISMATCH'}  {_op_summary(path)}")
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Train, export and record the Brevitas conformance zoo.")
    p.add_argument("out_dir", nargs="?", default=DEFAULT_OUT, help=f"output folder (default {os.path.relpath(DEFAULT_OUT)})")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=MODEL_NAMES, help="make only these models")
    p.add_argument("--epochs", type=int, default=None, help="training epochs for every model (default: each model's own)")
    p.add_argument("--check", action="store_true", help="only check the models in the folder against their stored outputs (no torch)")
    args = p.parse_args(argv)
    if args.check:
        return check(args.out_dir, args.only)

    _brevitas()
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    names = set(args.only or MODEL_NAMES)
    made = []
    for fam in FAMILIES:
        if names & {n for n, _ in fam[4]}:
            made += make_family(fam, args.out_dir, names=names, epochs=args.epochs)
    failed = sorted(names - set(made))
    print(f"made {len(made)} models in {os.path.relpath(args.out_dir)}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
