"""The ``sira`` command.

Each subcommand is a thin layer over the Python API: parse options, call the
API, render a table (people) or JSON (machines). User mistakes become a
one-line ``sira: error: ...`` and exit code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Optional, Sequence

from .cliutil import (
    EXIT_DEADLOCK,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    add_input_options,
    add_model,
    add_output_options,
    add_sampling_options,
    add_time_budget,
    check_model_path,
    emit,
    input_spec_from_args,
    check_sampling,
)
from .diff import add_parser as add_diff_parser
from .errors import DeadlockError, SiraError
from .explain import add_parser as add_explain_parser
from .version import __version__

_COLORS = {"green": "32", "red": "31", "yellow": "33", "bold": "1"}


def paint(text: str, color: str, stream=None) -> str:
    """``text`` in ``color`` on a terminal; plain when the stream is not a
    terminal or ``NO_COLOR`` is set (https://no-color.org)."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return text
    return f"\033[{_COLORS[color]}m{text}\033[0m"


# --------------------------------------------------------------------------
# subcommands
# --------------------------------------------------------------------------


def _check_output(args) -> None:
    """Refuse an unwritable ``-o`` (or one naming the model) before the work."""
    if getattr(args, "output", None):
        from .report import check_output_file

        check_output_file(args.output, inputs=[args.model])


def cmd_analyze(args) -> int:
    from .analysis import analyze
    from .model import load
    from .report import report_json, report_table

    check_model_path(args.model)
    _check_output(args)
    model = load(args.model)
    report = analyze(model, input_spec_from_args(args))
    doc = report_json(report, model_path=args.model)
    if args.format == "json":
        emit(args, json.dumps(doc, indent=2))
    else:
        emit(args, report_table(doc, include_constants=args.all))
    return EXIT_OK


def cmd_verify(args) -> int:
    from .analysis import analyze
    from .model import load
    from .verification import verify

    check_sampling(args, least=0)
    check_model_path(args.model)
    _check_output(args)
    model = load(args.model)
    report = analyze(model, input_spec_from_args(args))
    progress = _progress_bar("executing") if sys.stderr.isatty() and not args.quiet else None
    result = verify(model, samples=args.samples, seed=args.seed, report=report, precision=args.precision, progress=progress)
    if progress:
        sys.stderr.write("\n")
    if args.format == "json":
        emit(args, json.dumps(result.to_json(), indent=2))
    else:
        lines = [
            f"{paint('SOUND', 'green') if result.ok else paint('VIOLATED', 'red')} ({args.precision} execution): {result.samples} inputs "
            f"({args.samples} random + {result.samples - args.samples} corner), "
            f"{result.tensors_checked} tensors, {result.values_checked} values checked, "
            f"{result.violation_count} violation(s)"
        ]
        lines += [f"  {v}" for v in result.violations]
        if result.agreement is not None:
            lines.append(f"  {result.agreement.summary()}")
        emit(args, "\n".join(lines))
    return EXIT_OK if result.ok else EXIT_FAIL


def cmd_optimize(args) -> int:
    from sira.transforms.pipeline import optimize
    from sira.transforms.widths import width_table

    from .model import load
    from .report import check_output_file, save_model_atomic

    check_sampling(args, least=1)
    check_model_path(args.model)
    check_output_file(args.output, inputs=[args.model], force=args.force)
    if args.report:
        check_output_file(args.report, inputs=[args.model, args.output], force=args.force)
    step = _step_counter(args)
    model, report = optimize(load(args.model), input_spec_from_args(args), samples=args.samples, seed=args.seed, progress=step,
                             time_budget=args.time_budget)  # fmt: skip
    save_model_atomic(model, args.output)
    doc = report.to_json()
    if args.report:
        from .report import write_atomic

        write_atomic(args.report, json.dumps(doc, indent=2) + "\n")
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        lines = [width_table(report.layers)]
        if report.float_islands:
            lines.append("")
            lines.append("float islands (MAC layers left on floats):")
            lines += [f"  {i['node']}: {i['tensor']} {i['reason']}" for i in report.float_islands]
        else:
            lines.append("\nno float islands: every MAC layer computes on integers")
        lines.append(f"verified bit-exact against the original's reference semantics on {report.samples} inputs; wrote {args.output}")
        lines += [f"  {a['summary']}" for a in report.agreement.values()]
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


OPTIMIZE_STEPS = ["lower", "aggregate", "input-thresholds", "thresholds", "piecewise-thresholds", "joins", "annotate", "verify"]


def _step_counter(args, steps: Sequence[str] = tuple(OPTIMIZE_STEPS)) -> Optional[Callable[[str], None]]:
    """Prints "[i/N] step" on a terminal (stderr), nothing otherwise."""
    if args.quiet or not sys.stderr.isatty():
        return None
    steps = list(steps)

    def show(label: str) -> None:
        i = steps.index(label) + 1 if label in steps else 0
        sys.stderr.write(f"[{i}/{len(steps)}] {label}\n")

    return show


def _progress_bar(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()

    return show


# --------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------

EPILOG = """\
examples:
  sira analyze model.onnx --input-range 0,1
  sira analyze model.onnx --input-spec spec.json --format json -o ranges.json
  sira verify model.onnx --input-range -1,1 --samples 500
  sira optimize model.onnx --input-spec spec.json -o model_sira.onnx
  sira estimate model.onnx --input-spec spec.json --part xczu3eg-sbva484-1-i
  sira build model.onnx --input-spec spec.json -o model_hls --csim
  sira csim model_hls
  sira report model_hls
  sira explain model.onnx MatMul_0 --input-spec spec.json
  sira diff model_hls_before model_hls_after

Input ranges: inputs annotated with an integer finn_datatype (UINT8, BIPOLAR,
...) need none; otherwise give --input-range LO,HI or --input-spec FILE.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sira",
        description="Scaled-integer range analysis for quantized neural networks (QONNX): proves the range "
        "and integer grid of every tensor.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sira {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="print only results (no progress, no notes)")

    p = sub.add_parser(
        "analyze",
        parents=[common],
        help="range and integer grid of every tensor",
        description="Analyze a QONNX model: for every tensor, its proven real range and, where it exists, its "
        "scaled-integer form value = scale*q + bias with q in [int_min, int_max].",
        epilog="examples:\n  sira analyze tfc.onnx --input-range 0,1\n"
        "  sira analyze tfc.onnx --input-spec pixels.json --format json -o ranges.json\n"
        "  (pixels.json: {\"inputs\": {\"global_in\": {\"datatype\": \"UINT8\", \"scale\": \"1/255\"}}})",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model(p)
    add_input_options(p)
    add_output_options(p)
    p.add_argument("--all", action="store_true", help="also list constant tensors (weights, parameters) in the table")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "verify",
        parents=[common],
        help="check the analysis against execution",
        description="Execute the model with qonnx on random and corner inputs and check that every value of "
        "every tensor lies in its range and on its integer grid. Exit code 1 on any violation.",
        epilog="examples:\n  sira verify tfc.onnx --input-range 0,1 --samples 200\n"
        "  sira verify unsw.onnx --samples 500 --seed 7 --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model(p)
    add_input_options(p)
    add_output_options(p)
    add_sampling_options(p, 200, "random inputs to execute, on top of the corner inputs")
    p.add_argument(
        "--precision",
        choices=("float64", "float32"),
        default="float64",
        help="execute in float64 (default: the model's exact semantics up to 1e-16) or in the model's own float32",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "optimize",
        parents=[common],
        help="rewrite the model to integer MACs and exact thresholds",
        description="Run the SIRA pipeline: lower, aggregate scales and biases so every MatMul/Conv computes on "
        "integers, turn elementwise chains into exact integer thresholds, annotate minimal datatypes. The result "
        "is verified bit-exact against the original (a failure names the pass that broke it). Prints per layer the accumulator widths (datatype bound, "
        "FINN's method, sira) and the float islands left.",
        epilog="examples:\n  sira optimize tfc.onnx -o tfc_sira.onnx --input-spec pixels.json\n"
        "  sira optimize mlp.onnx -o out.onnx --input-range -1,1 --report report.json --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model(p)
    add_input_options(p)
    p.add_argument("-o", "--output", metavar="OUT.onnx", required=True, help="where to write the optimized model (atomically)")
    p.add_argument("--report", metavar="FILE.json", help="also write the per-layer report as JSON")
    p.add_argument("--format", choices=("table", "json"), default="table", help="table for people (default), json for tools")
    add_sampling_options(p, 500, "random inputs for the final equivalence check")
    p.add_argument("--force", action="store_true", help="allow -o to overwrite the input model")
    add_time_budget(p)
    p.set_defaults(func=cmd_optimize)
    _add_estimate_parser(sub, common)
    _add_build_parser(sub, common)
    _add_csim_parser(sub, common)
    _add_report_parser(sub, common)
    add_explain_parser(sub, common)
    add_diff_parser(sub, common)
    return parser


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """Let ``--input-range -1,1`` work: argparse would take ``-1,1`` for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--input-range" and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"--input-range={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


#: BLAS threading, unless the environment sets it: one thread. Verification
#: runs its batches side by side, one per core (sira.execute.WORKERS); BLAS
#: threads inside each batch's modest products only contend with them
#: (measured: 20 % slower with two of each on two cores)
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: Optional[Sequence[str]] = None) -> int:
    for variable in BLAS_THREAD_VARIABLES:  # read when numpy is first imported, below
        os.environ.setdefault(variable, "1")
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    debug = getattr(args, "debug", False)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        return int(args.func(args))
    except Terminated:
        print("sira: terminated", file=sys.stderr)
        return 143
    except SiraError as e:
        if debug:
            traceback.print_exc()
        print(f"sira: {paint('error', 'red', sys.stderr)}: {e}", file=sys.stderr)
        return EXIT_DEADLOCK if isinstance(e, DeadlockError) else EXIT_USAGE
    except KeyboardInterrupt:
        print("sira: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in sira, not the user's fault: say so
        if debug:
            traceback.print_exc()
        print(
            f"sira: internal error: {type(e).__name__}: {e} (re-run with --debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """SIGTERM as an exception, so that what is being written is cleaned up
    (``finally`` blocks run) before sira exits with 143."""


def _terminated(signum, frame):
    raise Terminated()


def cmd_estimate(args) -> int:
    from .estimate import estimate, estimate_table

    _check_hardware_options(args)
    check_model_path(args.model)
    _check_output(args)
    doc = estimate(args.model, input_spec_from_args(args), part=args.part, clock_ns=args.clock_ns, mode=args.mode,
                   target_fps=args.target_fps, folding=args.folding, progress=_step_counter(args, OPTIMIZE_STEPS + ["estimate"]),
                   time_budget=args.time_budget, impl=args.impl)  # fmt: skip
    if args.format == "json":
        emit(args, json.dumps(doc, indent=2))
    else:
        emit(args, estimate_table(doc))
    return EXIT_OK


def _add_hardware_options(p: argparse.ArgumentParser) -> None:
    from .devices import DEFAULT_PART

    p.add_argument("--part", default=DEFAULT_PART, metavar="PART", help=f"FPGA part (default {DEFAULT_PART})")
    p.add_argument("--clock-ns", type=float, default=10.0, metavar="NS", help="clock period in ns (default 10)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-fps", type=float, metavar="N", help="fold each layer just enough to reach N inferences/s")
    g.add_argument("--folding", metavar="FILE", help="FINN folding config JSON (PE, SIMD, ram_style per layer)")
    p.add_argument("--impl", choices=("auto", "cheapest", "thresholds", "integer"), default="auto",
                   help="how requantizers are built: compared thresholds, an exact integer multiply-add-shift, or per layer "
                   "the one taking the smallest share of the part among those using no more LUT, DSP, BRAM or URAM than "
                   "FINN's layer (auto, default), or the smallest share outright, even when it trades one resource for "
                   "another (cheapest); a folding file's \"impl\" key overrides it per layer")


def _check_hardware_options(args) -> None:
    from .devices import get_part

    get_part(args.part)  # unknown part: one-line error before any work
    if not (math.isfinite(args.clock_ns) and args.clock_ns > 0):
        raise SiraError(f"--clock-ns must be a positive number, got {args.clock_ns}")
    if args.target_fps is not None and not (math.isfinite(args.target_fps) and args.target_fps > 0):
        raise SiraError(f"--target-fps must be a positive number, got {args.target_fps}")
    if args.folding is not None and not os.path.isfile(args.folding):
        what = "is a folder" if os.path.isdir(args.folding) else "not found"
        raise SiraError(f"folding file '{args.folding}' {what}; give a FINN folding config JSON file")


def cmd_build(args) -> int:
    from .hls import build

    _check_hardware_options(args)
    check_model_path(args.model)
    check_sampling(args, least=1)
    if args.dataflow and not args.csim:
        raise SiraError("--dataflow chooses how --csim runs the project; add --csim")
    steps = [f"optimize: {step}" for step in OPTIMIZE_STEPS] + ["estimate", "plan", "vectors", "write"] + (["csim"] if args.csim else [])
    progress = _step_counter(args, steps)
    result = build(args.model, args.output, input_spec_from_args(args), part=args.part, clock_ns=args.clock_ns, target_fps=args.target_fps,
                   folding=args.folding, samples=args.samples, seed=args.seed, run_csim=args.csim, progress=progress,
                   force=args.force, time_budget=args.time_budget, control=args.control, impl=args.impl, dataflow=args.dataflow)  # fmt: skip
    project = result.project
    if project.replacement.kept and not args.quiet:
        print(f"kept {len(project.replacement.kept)} path(s) sira did not write: {', '.join(project.replacement.kept[:8])}",
              file=sys.stderr)  # fmt: skip
    if project.replacement.removed:
        print(f"--force removed {len(project.replacement.removed)} path(s) sira had not written: "
              f"{', '.join(project.replacement.removed[:8])}", file=sys.stderr)  # fmt: skip
    if not args.quiet:
        from .estimate import estimate_table

        print(estimate_table(project.estimate))
        print()
    stages = len(project.dataflow.stages)
    print(f"wrote {project.path}: top function {project.top}, {stages} stages, {project.samples} test vectors")
    for line in _float_agreement(project.path):
        print(f"  {line}")
    if result.csim is not None:
        print(paint(result.csim.summary(), "green" if result.csim.passed else "red"))
        for line in [] if args.quiet else _fifo_lines(result.csim):
            print(f"  {line}")
        return EXIT_OK if result.csim.passed else EXIT_FAIL
    return EXIT_OK


def _fifo_lines(result) -> list[str]:
    """After a dataflow C simulation: how full each FIFO deeper than the
    default got (the ones sized for branches that meet again)."""
    from .hls.fifos import BASE_DEPTH

    return [f"FIFO {s.stream}: at most {s.peak} of its {s.depth} words held" for s in result.streams if s.depth > BASE_DEPTH]


def _float_agreement(project_path: str) -> list[str]:
    """The build's lines on how float execution of the original agrees with
    the reference semantics its test vectors come from."""
    try:
        with open(os.path.join(project_path, "report", "optimize.json")) as f:
            return list(json.load(f).get("float_agreement", {}).values())
    except (OSError, ValueError):
        return []


def cmd_csim(args) -> int:
    from .hls import csim
    from .hls.simulate import run_layers

    if args.layers and (args.dataflow or args.fifo_depth is not None):
        raise SiraError("--layers checks every stage alone and cannot run with --dataflow or --fifo-depth; give one or the other")
    if args.fifo_depth is not None and not args.dataflow:
        raise SiraError("--fifo-depth sets the FIFOs of the dataflow C simulation; add --dataflow")
    if args.layers:
        ok, output, _ = run_layers(args.project)
        sys.stdout.write(output)
        return EXIT_OK if ok else EXIT_FAIL
    result = csim(args.project, dataflow=args.dataflow, fifo_depth=args.fifo_depth)
    if not result.passed and not args.quiet:
        sys.stdout.write("".join(line + "\n" for line in result.output.splitlines()[:20] if line.startswith("sample")))
    print(paint(result.summary(), "green" if result.passed else "red") + (" (cached build)" if result.cached and not args.quiet else ""))
    for line in [] if args.quiet else _fifo_lines(result):
        print(f"  {line}")
    return EXIT_OK if result.passed else EXIT_FAIL


def _add_build_parser(sub, common) -> None:
    p = sub.add_parser(
        "build",
        parents=[common],
        help="HLS C++ project for Vitis, with testbench and C simulation",
        description="Optimize the model, lower it to hardware layers, fold and estimate them, and write a Vitis HLS "
        "project: one C++ stage per layer with the analysis' integer widths, a DATAFLOW top function, a testbench whose "
        "expected outputs come from executing the original model, run_hls.tcl (vitis_hls), hls_config.cfg (v++ --mode "
        "hls), csim.sh (g++ only), report/estimate.json and manifest.json. The folder is written atomically; a "
        "rebuild replaces only the files sira wrote and keeps everything else (a Vitis solution, notes); a folder that "
        "is not verifiably sira's is refused unless --force. With --csim the project is also C-simulated with g++.",
        epilog="examples:\n  sira build tfc.onnx --input-spec pixels.json -o tfc_hls --csim\n"
        "  sira build tfc.onnx --input-spec pixels.json -o tfc_hls --target-fps 100000 --part xczu3eg-sbva484-1-i\n"
        "  cd tfc_hls && vitis_hls -f run_hls.tcl   (on a machine with Vitis HLS)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model(p)
    add_input_options(p)
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="project folder to write")
    _add_hardware_options(p)
    p.add_argument("--csim", action="store_true", help="also compile the project with g++ and run its testbench")
    p.add_argument("--dataflow", action="store_true",
                   help="with --csim: run the stages concurrently over FIFOs of the generated depths; a deadlock exits with 3")
    p.add_argument("--control", choices=("none", "hs"), default="none",
                   help="block control of the top: none (free-running, AXI streams only; default) or hs (ap_ctrl_hs on AXI-Lite)")
    add_sampling_options(p, 100, "random test inputs, on top of the corner inputs")
    p.add_argument("--force", action="store_true",
                   help="replace DIR wholesale even where it holds files sira did not write (they are listed)")
    add_time_budget(p)
    p.set_defaults(func=cmd_build)


def _add_csim_parser(sub, common) -> None:
    p = sub.add_parser(
        "csim",
        parents=[common],
        help="C-simulate a project made by sira build (g++, no Vitis)",
        description="Compile a project's testbench with g++ against the ap_types headers ($XILINX_HLS/include, else "
        "the copy in the hls4ml package), run it on the project's test vectors and compare every output bit for "
        "bit. Exit code 0 only when all are exact; otherwise the first mismatching layer is named (exit 1). By default "
        "the stages run one after the other over unbounded streams, which checks the numbers only; --dataflow runs "
        "every stage as its own thread over FIFOs of the generated depths, as the hardware does, and a deadlock "
        "is reported on one line naming every blocked stage and the stream it waits on (exit 3). Builds are cached "
        "by content, so a second run does not recompile.",
        epilog="examples:\n  sira csim tfc_hls\n  sira csim tfc_hls --layers   (check every stage alone on the first sample)\n"
        "  sira csim tfc_hls --dataflow   (stages concurrently, bounded FIFOs: finds deadlocks)\n"
        "  sira csim tfc_hls --dataflow --fifo-depth 2   (every inner FIFO 2 deep instead of its generated depth)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("project", metavar="DIR", help="project folder written by sira build")
    p.add_argument("--layers", action="store_true", help="run the stage-by-stage testbench instead (per-layer check)")
    p.add_argument("--dataflow", action="store_true",
                   help="run every stage as a thread over bounded FIFOs of the generated depths; a deadlock exits with 3")
    p.add_argument("--fifo-depth", type=int, metavar="N", help="with --dataflow: force every inner FIFO to depth N")
    p.set_defaults(func=cmd_csim)


def cmd_report(args) -> int:
    from .htmlreport import render_report, write_report
    from .report import write_atomic

    if args.output:
        write_atomic(args.output, render_report(args.project))
        path = args.output
    else:
        path = write_report(args.project)
    print(f"wrote {path}")
    return EXIT_OK


def _add_report_parser(sub, common) -> None:
    p = sub.add_parser(
        "report",
        parents=[common],
        help="self-contained HTML report of a project made by sira build",
        description="Render one self-contained HTML page (no network assets) of a build folder: the C-simulation "
        "verdict, per MAC layer a bitwidth waterfall (input, weight, accumulator by the datatype bound, by FINN's "
        "method, by sira), the resources before and after SIRA, the range table with exact/loose marks, float "
        "islands and warnings, and the manifest. sira build and sira csim keep DIR/report/report.html up to date.",
        epilog="examples:\n  sira report tfc_hls                 (writes tfc_hls/report/report.html)\n"
        "  sira report tfc_hls -o tfc.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("project", metavar="DIR", help="project folder written by sira build")
    p.add_argument("-o", "--output", metavar="FILE", help="write the page to FILE instead of DIR/report/report.html")
    p.set_defaults(func=cmd_report)


def _add_estimate_parser(sub, common) -> None:
    from .devices import PARTS

    p = sub.add_parser(
        "estimate",
        parents=[common],
        help="FPGA resources and throughput, SIRA versus the FINN baseline",
        description="Optimize the model (unless it already is), lower it to hardware layers, fold them (PE=SIMD=1 "
        "by default, or --target-fps, or a FINN folding file), check them, and estimate per layer LUT, DSP, "
        "BRAM_18K, URAM and cycles - for SIRA and for what FINN 1.6.1 builds from the same model (its "
        "accumulator and weight widths, a float Thresholding_rtl for the input quantizer, the float tail in the "
        "dataflow) - with the deltas. Unknown costs are "
        "reported as unknown, never as 0. Known parts: " + ", ".join(sorted(PARTS)) + ".",
        epilog="examples:\n  sira estimate tfc.onnx --input-spec pixels.json\n"
        "  sira estimate tfc.onnx --input-spec pixels.json --target-fps 100000 --part xczu3eg-sbva484-1-i\n"
        "  sira estimate tfc.onnx --input-spec pixels.json --folding folding.json --format json -o estimate.json\n"
        "  sira estimate tfc.onnx --input-spec pixels.json --mode finn   (FINN's own formulas)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model(p)
    add_input_options(p)
    add_output_options(p)
    _add_hardware_options(p)
    p.add_argument("--mode", choices=("refined", "finn"), default="refined",
                   help="cost model: refined (default, sira's primitive model) or finn (FINN's formulas)")
    add_time_budget(p)
    p.set_defaults(func=cmd_estimate)


if __name__ == "__main__":
    sys.exit(main())
