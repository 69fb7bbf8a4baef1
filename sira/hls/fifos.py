"""FIFO depths that keep the dataflow free of deadlock, and a model of the
dataflow with bounded FIFOs that finds a deadlock.

Where a stream fans out (a :class:`~.kernels.Duplicate`, a ``Split``) and
the branches meet again (a ``Concat``, an ``AddStreams``, a two-input
elementwise layer), the branch that delivers its first word later (a
convolution's sliding window fills rows first) holds the join back, while
the fan-out keeps writing the other, early branch. The early branch's FIFO
must hold everything written to it in the meantime, or the fan-out blocks on
it and the late branch starves: a deadlock in hardware (C simulation never
shows it, its streams are unbounded).

Every stage is modelled as a :data:`Program`: per frame, the words it
reads from each input and writes to each output, in the order its kernel
does (:func:`program`). The **lag** of a pair of branches follows from the
programs along them (:func:`lags`); :func:`size` makes the fan-out's FIFO
on the early branch that deep, with a margin. :func:`simulate` runs the
programs with the FIFOs' depths and reports a deadlock.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional, Sequence

from .. import hw
from .kernels import Duplicate, WidthConverter

#: one step of a stage, repeated ``count`` times: per repetition one word
#: read from each input whose flag is 1, then one written to each output whose flag is 1
Step = tuple[int, tuple[int, ...], tuple[int, ...]]
Program = list[Step]

#: the depth of a stream with nothing to wait for (a word in flight both ways)
BASE_DEPTH = 2


def _unit(n: int, j: int) -> tuple[int, ...]:
    return tuple(1 if i == j else 0 for i in range(n))


def _pixels(shape: Sequence[int]) -> int:
    return math.prod(shape[1:-1]) if len(shape) > 2 else 1


def _window_lag_pixels(layer: hw.HWLayer) -> Optional[int]:
    """Input pixels a window layer reads before its first output: every
    row of the window but the last, and the last row up to the window's
    width (None: not a window layer)."""
    kernel, ifm = getattr(layer, "kernel", None), getattr(layer, "ifm_dim", None)
    if kernel is None or ifm is None:
        return None
    dilation = getattr(layer, "dilation", (1, 1))
    rows, cols = (kernel[0] - 1) * dilation[0] + 1, (kernel[1] - 1) * dilation[1] + 1
    return min((rows - 1) * ifm[1] + cols, ifm[0] * ifm[1])


def _layer_program(layer: hw.HWLayer, in_words: Sequence[int], out_words: Sequence[int]) -> Program:
    """A layer as ``steps`` rounds of reading its inputs in proportion and
    writing a share of every output: per output pixel for a MAC or a window
    layer, per word-group otherwise. A window layer first reads its window's
    lag; a MAC on one vector reads it whole before its first output."""
    out0 = out_words[0]
    lag_pixels = _window_lag_pixels(layer)
    if lag_pixels is not None or isinstance(layer, (hw.MVAU, hw.VVAU)):
        steps = math.gcd(_pixels(layer.output_shapes[0]), out0)
    else:
        steps = math.gcd(out0, *in_words)
    in_pixels = _pixels(layer.input_shapes[0])
    lags = [w * lag_pixels // in_pixels if lag_pixels is not None else w // steps for w in in_words]
    n_in, n_out = len(in_words), len(out_words)
    prog: Program = []
    done = [0] * n_in
    for p in range(steps):
        for j, (total, lag) in enumerate(zip(in_words, lags)):
            target = total if steps == 1 else lag + -(-(total - lag) * p // (steps - 1))
            if target > done[j]:
                prog.append((target - done[j], _unit(n_in, j), (0,) * n_out))
                done[j] = target
        prog.append((out0 // steps, (0,) * n_in, (1,) * n_out))
    return prog


def program(node, in_words: Sequence[int], out_words: Sequence[int]) -> Program:
    """The words a stage reads and writes per frame, in its kernel's order
    (``in_words``/``out_words``: words per frame of each of its streams)."""
    if isinstance(node, Duplicate):
        return [(in_words[0], (1,), (1,) * len(out_words))]
    if isinstance(node, WidthConverter):
        group = node.group
        steps = [(group // node.in_lanes, (1,), (0,)), (group // node.out_lanes, (0,), (1,))]
        return steps * (node.elements // group)
    if isinstance(node, hw.Split):
        return [(c // node.simd, (1,), _unit(len(node.channels), j)) for j, c in enumerate(node.channels)] * node.pixels
    if isinstance(node, hw.Concat):
        return [(c // node.simd, _unit(len(node.channels), j), (1,)) for j, c in enumerate(node.channels)] * node.pixels
    if isinstance(node, hw.GateMul):  # the whole gate first, then the frame word by word
        return [(in_words[1], (0, 1), (0,)), (in_words[0], (1, 0), (1,))]
    return _layer_program(node, in_words, out_words)


def _moved_by_write(prog: Program, slot: int, k: int, per_step) -> int:
    """Words moved on one port (``per_step(reads, writes)`` per step) when
    the stage writes its ``k``-th word (from 1) on output ``slot`` (a whole
    frame's if it never does)."""
    moved = written = 0
    for count, reads, writes in prog:
        if writes[slot] and written + count >= k:
            return moved + (k - written) * per_step(reads, writes)
        moved += count * per_step(reads, writes)
        written += count * writes[slot]
    return moved


def inputs_needed(prog: Program, slot_in: int, slot_out: int, k: int) -> int:
    """Words a stage has read on input ``slot_in`` when it writes its
    ``k``-th word (from 1) on output ``slot_out`` (a whole frame's if it never does)."""
    return _moved_by_write(prog, slot_out, k, lambda reads, _writes: reads[slot_in])


def written_with(prog: Program, slot: int, k: int, other: int) -> int:
    """Words a stage has written on output ``other`` when it writes its
    ``k``-th word on output ``slot``."""
    return _moved_by_write(prog, slot, k, lambda _reads, writes: writes[other])


# --------------------------------------------------------------------------
# the graph of stages
# --------------------------------------------------------------------------


def _programs(stages, streams) -> list[Program]:
    return [program(st.node, [streams[s].words for s in st.inputs], [streams[s].words for s in st.outputs]) for st in stages]


def _paths(stages, start: str) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
    """From stream ``start`` downstream: for every (stage index, input
    slot) reached, the first path to it found breadth-first, as hops
    (stage index, input slot, output slot) before it."""
    readers = {sid: (i, j) for i, st in enumerate(stages) for j, sid in enumerate(st.inputs)}
    found: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    frontier = [(start, [])]
    while frontier:
        sid, path = frontier.pop(0)
        if sid not in readers or readers[sid] in found:
            continue
        i, j = readers[sid]
        found[(i, j)] = path
        frontier += [(out, path + [(i, j, k)]) for k, out in enumerate(stages[i].outputs)]
    return found


def _first_word_needs(progs: list[Program], path: list[tuple[int, int, int]]) -> int:
    """Words that must enter ``path`` before its last stage writes its first word."""
    need = 1
    for i, slot_in, slot_out in reversed(path):
        need = inputs_needed(progs[i], slot_in, slot_out, need)
    return need


def lags(stages, streams) -> dict[str, int]:
    """For every output stream of a fan-out whose branches meet again: the
    words it must hold while the latest other branch delivers its first
    word to the meeting stage."""
    out: dict[str, int] = {}
    if all(len(st.outputs) < 2 for st in stages):
        return out
    progs = _programs(stages, streams)
    for f, st in enumerate(stages):
        if len(st.outputs) < 2:
            continue
        reach = [_paths(stages, sid) for sid in st.outputs]
        for b, d in itertools.permutations(range(len(st.outputs)), 2):
            joins = sorted({i for i, _ in reach[b]} & {i for i, _ in reach[d]})
            if joins:  # b is late at the first stage both reach: d holds what the fan-out wrote it meanwhile
                path_b = next(p for (i, _), p in reach[b].items() if i == joins[0])
                lag = written_with(progs[f], b, _first_word_needs(progs, path_b), d)
                out[st.outputs[d]] = max(out.get(st.outputs[d], 0), lag)
    return out


def depth_for(lag: int, frame_words: int) -> int:
    """The FIFO depth for a lag of ``lag`` words: the base depth holds a
    lag that small; beyond, the lag plus an eighth and the base depth (the
    stage programs are proportional models of the kernels, and a window's
    lag repeats on every row), at most a frame."""
    if lag <= BASE_DEPTH:
        return BASE_DEPTH
    return min(lag + lag // 8 + BASE_DEPTH, frame_words + BASE_DEPTH)


def size(stages, streams) -> None:
    """Deepen the fan-out FIFOs of ``streams`` (by id) to their lag's depth."""
    for sid, lag in lags(stages, streams).items():
        streams[sid].depth = max(streams[sid].depth, depth_for(lag, streams[sid].words))


# --------------------------------------------------------------------------
# the dataflow with bounded FIFOs
# --------------------------------------------------------------------------


def simulate(stages, streams, depths: Optional[dict[str, int]] = None, frames: int = 2) -> Optional[str]:
    """Run every stage's program for ``frames`` frames over FIFOs of
    ``depths`` (default: the streams' own). Input ports always have words,
    output ports always room. None when every stage finishes; otherwise the
    deadlock: each stage that cannot go on and the stream it waits for."""
    depths = depths or {sid: s.depth for sid, s in streams.items()}
    produced = {sid for st in stages for sid in st.outputs}
    consumed = {sid for st in stages for sid in st.inputs}
    level = {sid: 0 for sid in streams}
    progs = [p * frames for p in _programs(stages, streams)]
    pc = [0] * len(stages)
    left = [p[0][0] if p else 0 for p in progs]

    def room(sid: str) -> float:
        return math.inf if sid not in consumed else depths[sid] - level[sid]

    def have(sid: str) -> float:
        return math.inf if sid not in produced else level[sid]

    moved = True
    while moved:
        moved = False
        for i, st in enumerate(stages):
            while pc[i] < len(progs[i]):
                _, reads, writes = progs[i][pc[i]]
                n = left[i]
                n = min([n] + [have(s) for s, r in zip(st.inputs, reads) if r] + [room(s) for s, w in zip(st.outputs, writes) if w])
                if n <= 0:
                    break
                n = int(n)
                for s, r in zip(st.inputs, reads):
                    level[s] -= n * r
                for s, w in zip(st.outputs, writes):
                    level[s] += n * w
                left[i] -= n
                moved = True
                if left[i] == 0:
                    pc[i] += 1
                    left[i] = progs[i][pc[i]][0] if pc[i] < len(progs[i]) else 0
    stuck = [i for i in range(len(stages)) if pc[i] < len(progs[i])]
    if not stuck:
        return None
    return "; ".join(f"{stages[i].id} waits on {_waiting(stages[i], progs[i][pc[i]], have, room)}" for i in stuck)


def _waiting(stage, step: Step, have, room) -> str:
    _, reads, writes = step
    empty = [f"empty {s}" for s, r in zip(stage.inputs, reads) if r and have(s) < 1]
    full = [f"full {s}" for s, w in zip(stage.outputs, writes) if w and room(s) < 1]
    return ", ".join(empty + full)


__all__ = ["Program", "program", "inputs_needed", "written_with", "lags", "depth_for", "size", "simulate", "BASE_DEPTH"]
