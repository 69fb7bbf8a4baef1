"""``sira explain MODEL NAME``: the subcommand over :func:`sira.explain.core.explain`."""

from __future__ import annotations

import argparse
import json

from ..cliutil import EXIT_OK, add_input_options, add_model, add_text_output_options, check_model_path, emit, input_spec_from_args, check_sampling
from . import DEFAULT_SAMPLES

EPILOG = """\
examples:
  sira explain mlp.onnx MatMul_0 --input-spec spec.json          (a MAC layer: why its accumulator width)
  sira explain mlp.onnx Quant_4_out0 --input-spec spec.json      (a quantizer that becomes thresholds)
  sira explain mlp.onnx fc0_acc --input-spec spec.json           (names of the original file work too)
  sira explain mlp_sira.onnx MultiThreshold_1                    (a threshold layer of an optimized model)
  sira explain mlp.onnx MatMul_0 --input-range 0,1 --format json -o why.json

Names are those of sira analyze MODEL (tensors) and of the prepared model's
nodes (MatMul_0, Quant_4, ...), or the original file's names.
"""


def add_parser(sub, common) -> None:
    """Register ``sira explain`` on an argparse subparsers object."""
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="why a tensor or layer has its range and width",
        description="Explain one tensor or layer: for a MAC layer the numbers behind its accumulator width (K, input "
        "interval, per-channel weight sums, the channels that set the range, A2Q and FINN widths, exact what-ifs); for "
        "a threshold layer the chain it replaces and its thresholds per channel; for a fallback range the op without a "
        "rule; for any other tensor its range, grid and the rule that computed it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model(p)
    p.add_argument("name", metavar="NAME", help="tensor or node name (as listed by sira analyze MODEL), or an original name of the file")
    add_input_options(p)
    add_text_output_options(p)
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"random inputs for the final check when sira optimize runs (threshold layers; default {DEFAULT_SAMPLES})")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    # imported on use: the explanation needs numpy and qonnx, registering the subcommand does not
    from .core import explain
    from .text import explain_text

    check_sampling(args, least=1)
    check_model_path(args.model)
    doc = explain(args.model, args.name, input_spec_from_args(args), samples=args.samples)
    emit(args, json.dumps(doc, indent=2) if args.format == "json" else explain_text(doc))
    return EXIT_OK


__all__ = ["EPILOG", "add_parser", "cmd_explain"]
