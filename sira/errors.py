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


class RuleError(SiraError):
    """An op rule found its node malformed or out of its domain.

    The driver prefixes the node name and op type, so rules only describe
    the problem and the fix.
    """


def node_error(node, message: str) -> SiraError:
    """A SiraError naming ``node`` (an onnx NodeProto) and its op type."""
    name = node.name or (node.output[0] if node.output else "?")
    return SiraError(f"node '{name}' ({node.op_type}): {message}")
