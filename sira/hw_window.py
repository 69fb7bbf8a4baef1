"""Hardware layers that move over an image: zero padding, the sliding window
generator and pooling (see :mod:`sira.hw` for the conventions). Besides
their cycles they give the line-buffer geometry and the loop bounds the
generated code uses."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional

from .errors import SiraError
from .hw_base import HWLayer, StreamType, channel_folds_pe, channel_folds_simd, pe_over_channels, pixel_cycles, simd_over_channels


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class FMPadding(HWLayer):
    """Zero padding of an image stream: ``padding`` is (top, left, bottom,
    right), in ``value`` (0 for convolutions). ``SIMD`` divides ``channels``."""

    kind: ClassVar[str] = "FMPadding"
    in_factors: ClassVar[tuple[str, ...]] = ("simd",)
    out_factors: ClassVar[tuple[str, ...]] = ("simd",)

    channels: int
    padding: tuple[int, int, int, int]
    value: int = 0

    def __post_init__(self):
        object.__setattr__(self, "padding", tuple(int(v) for v in self.padding))
        super().__post_init__()

    fold_dims = simd_over_channels
    channel_folds = property(channel_folds_simd)

    cycles = property(pixel_cycles)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class ConvolutionInputGenerator(HWLayer):
    """Sliding window generator: reads an (already padded) ``ifm_dim`` image
    of ``channels`` and emits, per output pixel of ``ofm_dim``, the
    ``kernel`` window in (kh, kw, c) order. ``depthwise`` streams the window
    channel-interleaved for a VVAU. ``SIMD`` divides ``channels``."""

    kind: ClassVar[str] = "ConvolutionInputGenerator"
    in_factors: ClassVar[tuple[str, ...]] = ("simd",)
    out_factors: ClassVar[tuple[str, ...]] = ("simd",)

    channels: int
    ifm_dim: tuple[int, int]
    ofm_dim: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    depthwise: bool = False

    def __post_init__(self):
        for f in ("ifm_dim", "ofm_dim", "kernel", "stride", "dilation"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        super().__post_init__()

    fold_dims = simd_over_channels
    channel_folds = property(channel_folds_simd)

    @property
    def window_rows(self) -> int:
        """Input rows one window spans (dilation included)."""
        return (self.kernel[0] - 1) * self.dilation[0] + 1

    @property
    def buffer_rows(self) -> int:
        """Rows of the line buffer: a window's rows plus the stride's rows
        the next window row needs, read while the current one is emitted."""
        return self.window_rows + self.stride[0]

    @property
    def row_words(self) -> int:
        """Stream words of one input row."""
        return self.ifm_dim[1] * self.channel_folds

    @property
    def prefill_words(self) -> int:
        """Stream words read before the first window: its rows."""
        return self.window_rows * self.row_words

    @property
    def window_row_words(self) -> int:
        """Stream words emitted per output row (every window of the row)."""
        return self.ofm_dim[1] * int(math.prod(self.kernel)) * self.channel_folds

    @property
    def cycles(self) -> int:
        window = int(math.prod(self.ofm_dim)) * int(math.prod(self.kernel))
        return max(window, int(math.prod(self.ifm_dim))) * self.channel_folds


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class PoolingWindow(HWLayer):
    """What the pooling layers share: ``kernel`` windows with ``stride`` over
    an ``ifm_dim`` image of ``channels`` (no padding), a line buffer of
    window rows, one word per cycle. ``PE`` divides ``channels``."""

    channels: int
    ifm_dim: tuple[int, int]
    ofm_dim: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]

    def __post_init__(self):
        for f in ("ifm_dim", "ofm_dim", "kernel", "stride"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        super().__post_init__()

    fold_dims = pe_over_channels
    channel_folds = property(channel_folds_pe)

    @property
    def buffer_rows(self) -> int:
        """Rows of the line buffer: the kernel's rows plus the stride's rows
        the next window row needs, read while the current one is reduced."""
        return self.kernel[0] + self.stride[0]

    @property
    def row_words(self) -> int:
        """Stream words of one input row."""
        return self.ifm_dim[1] * self.channel_folds

    @property
    def prefill_words(self) -> int:
        """Stream words read before the first window: the kernel's rows."""
        return self.kernel[0] * self.row_words

    @property
    def window_row_words(self) -> int:
        """Window elements reduced per output row (one word per cycle)."""
        return self.ofm_dim[1] * int(math.prod(self.kernel)) * self.channel_folds

    @property
    def cycles(self) -> int:
        return int(math.prod(self.ifm_dim)) * self.channel_folds


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class StreamingMaxPool(PoolingWindow):
    """Max pooling over ``kernel`` windows with ``stride`` on an image
    stream (no padding). ``PE`` divides ``channels``."""

    kind: ClassVar[str] = "StreamingMaxPool"


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Pool(PoolingWindow):
    """Pooling by summation (``function`` ``"sum"``): the integer sum over
    each ``kernel`` window; an average pool is this sum, its division folded
    into the next requantization (thresholds or scale). ``PE`` divides
    ``channels``."""

    kind: ClassVar[str] = "Pool"

    function: str = "sum"
    acc_type: Optional[StreamType] = None

    def __post_init__(self):
        if self.function != "sum":
            raise SiraError(f"layer '{self.name}' (Pool): function '{self.function}' is not supported; only 'sum'")
        super().__post_init__()

    @property
    def is_global(self) -> bool:
        """One window over the whole image (global pooling): a running
        value per channel, no line buffer."""
        return self.kernel == self.ifm_dim and self.ofm_dim == (1, 1)


__all__ = ["FMPadding", "ConvolutionInputGenerator", "StreamingMaxPool", "Pool"]
