"""Options and output shared by the ``sira`` subcommands.

``sira.cli`` registers most subcommands itself and those of ``sira explain``
and ``sira diff`` through their own modules; all of them take the model,
the input ranges and the output file the same way, from here, so that the
subcommand modules never import ``sira.cli`` (which imports them).
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import SiraError

EXIT_OK = 0
EXIT_FAIL = 1  # the check ran and found a problem (e.g. a soundness violation)
EXIT_USAGE = 2  # the user's input is wrong
EXIT_DEADLOCK = 3  # the dataflow C simulation deadlocked (sira.errors.DeadlockError)


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QONNX model file (.onnx); QCDQ models are converted on load")


def add_input_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--input-range",
        metavar="LO,HI",
        help="range of every model input, e.g. 0,1 (negative: --input-range=-1,1 or --input-range -1,1)",
    )
    g.add_argument(
        "--input-spec",
        metavar="FILE",
        help='JSON file with per-input (optionally per-channel) ranges or integer grids, e.g. '
        '{"inputs": {"x": {"datatype": "UINT8", "scale": "1/255"}}}',
    )


def add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table", help="table for people (default), json for tools")
    add_output_file(p)


def add_text_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text", help="text for people (default), json for tools")
    add_output_file(p)


def add_output_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="write the result to FILE (atomically) instead of standard output")


def input_spec_from_args(args):
    """The input ranges the options give: ``--input-range`` parsed, or the
    ``--input-spec`` file's path, or None."""
    # imported on use: the spec parser pulls in numpy, which `sira --help` does not need
    from .inputspec import parse_range_text

    if getattr(args, "input_range", None):
        return parse_range_text(args.input_range)
    return getattr(args, "input_spec", None)


def emit(args, text: str) -> None:
    """Print a result, or write it atomically to ``--output``."""
    # imported on use: sira.report pulls in numpy, which `sira --help` does not need
    from .report import write_atomic

    if args.output:
        write_atomic(args.output, text if text.endswith("\n") else text + "\n")
        if not args.quiet:
            print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def check_model_path(path: str) -> None:
    if not os.path.exists(path):
        raise SiraError(f"model file '{path}' not found; give the path to a QONNX .onnx file")


__all__ = [
    "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "add_model", "add_input_options", "add_output_options", "add_text_output_options",
    "add_output_file", "input_spec_from_args", "emit", "check_model_path",
]


#: more random inputs than any check needs; past it a typo is likelier than intent
MAX_SAMPLES = 1_000_000


def add_sampling_options(p: argparse.ArgumentParser, default: int, what: str) -> None:
    """``--samples N`` (``what`` they are for, ``default``) and ``--seed S``."""
    p.add_argument("--samples", type=int, default=default, metavar="N", help=f"{what} (default {default})")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")


def add_time_budget(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-budget", type=float, metavar="S",
                   help="stop the optimize passes after S seconds, naming the pass and layer reached (default: no limit)")


def check_sampling(args, least: int) -> None:
    """``--samples`` between ``least`` and :data:`MAX_SAMPLES`, ``--seed``
    non-negative (numpy's generators take no sign): one-line errors before
    any work."""
    if not least <= args.samples <= MAX_SAMPLES:
        raise SiraError(f"--samples must be between {least} and {MAX_SAMPLES:,}, got {args.samples}")
    if getattr(args, "seed", 0) < 0:
        raise SiraError(f"--seed must be 0 or more, got {args.seed}")
