"""User-facing errors.

Every problem a user can cause (a bad file, an impossible input range, an
unsupported construct) raises :class:`SiraError` with a message that names
the problem, where it is (node, op, tensor) and what to do about it. The CLI
prints that message on one line and exits with code 2; it shows a traceback
only with ``--debug``.
"""

from __future__ import annotations


class SiraError(Exception):
    """A problem with the user's input, explained in the message."""


class DeadlockError(SiraError):
    """The dataflow C simulation of a generated project deadlocked: every
    stage still running waits on an empty or a full FIFO. Not a mistake in
    the user's input, so the CLI exits with its own code, 3. ``blocked``
    is the simulation's line naming every blocked stage and its stream;
    ``streams`` and ``stages`` its progress up to then."""

    exit_code = 3

    def __init__(self, message: str, blocked: str = "", streams=(), stages=()):
        super().__init__(message)
        self.blocked = blocked
        self.streams = list(streams)
        self.stages = list(stages)


class RuleError(SiraError):
    """An op rule found its node malformed or out of its domain.

    The driver prefixes the node name and op type, so rules only describe
    the problem and the fix.
    """


def node_error(node, message: str) -> SiraError:
    """A SiraError naming ``node`` (an onnx NodeProto) and its op type."""
    name = node.name or (node.output[0] if node.output else "?")
    return SiraError(f"node '{name}' ({node.op_type}): {message}")
