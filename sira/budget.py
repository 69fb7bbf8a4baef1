"""A time budget for the long steps (the optimize passes, the threshold
search): checked between units of work, so that a model that would take
too long stops with the step and the layer it had reached instead of
running on."""

from __future__ import annotations

import time
from typing import Optional

from .errors import SiraError


class TimeBudget:
    """``seconds`` from now (None: no limit)."""

    def __init__(self, seconds: Optional[float] = None):
        if seconds is not None and not seconds > 0:
            raise SiraError(f"the time budget must be a positive number of seconds, got {seconds}")
        self.seconds = seconds
        self.start = time.monotonic()

    def check(self, where: str) -> None:
        """Raise, naming ``where`` the work was, once the budget is spent."""
        if self.seconds is not None and time.monotonic() - self.start > self.seconds:
            raise SiraError(f"the time budget of {self.seconds:g} s ran out {where}; give more with --time-budget "
                            "(or none for no limit)")  # fmt: skip
