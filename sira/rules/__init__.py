"""Op rules: one small pure function per op type, registered by op type in
:data:`RULES` (:mod:`.registry`). Each family of ops is one submodule;
importing this package registers them all."""

from __future__ import annotations

from . import quant, linear, elementwise, smooth, pooling, movement, resize, misc  # noqa: F401  (registering, in this order)
from .registry import EXACT, RULES, SOUND, Rule, RuleContext, rule

__all__ = ["EXACT", "SOUND", "RULES", "Rule", "RuleContext", "rule"]
