"""The Keras progress bar, without the log spam.

Format (as Keras 3): ``750/750 ━━━━━━━━━━━━━━━━━━━━ 5s 6ms/step - accuracy: 0.9512 - loss: 0.1634``
— step/total, a 20-cell bar, the ETA while running or the elapsed time at the end, the time per
step, then `` - key: value`` in ``.4f`` (``.4e`` when |value| <= 1e-3).

Difference from Keras, on purpose: the bar is redrawn in place only when stdout is a terminal or a
Jupyter kernel is running. When output goes to a file or a pipe (CI logs, SLURM, ``nohup``) the
bar prints one plain line when it finishes, with no ``\\b``/``\\r`` and no ANSI colour codes.
"""
from __future__ import annotations

import math
import sys
import time

__all__ = ["Progbar", "is_dynamic_display"]


def is_dynamic_display(stream=None) -> bool:
    """True when ``stream`` (default: stdout) can redraw a line in place: a TTY or a notebook."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # closed stream
        return False
    return "ipykernel" in sys.modules


def format_duration(seconds: float) -> str:
    """ETA format: ``12s``, ``1:05``, ``1:02:03``."""
    if seconds > 3600:
        return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)
    if seconds > 60:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def format_time_per_unit(seconds: float, unit_name: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit_name}"
    return f"{seconds * 1e6:.0f}us/{unit_name}"


def format_value(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


class Progbar:
    """Displays a progress bar (``keras.utils.Progbar``).

    Args:
        target: total number of steps, or None if unknown.
        width: bar width in characters.
        verbose: 0 silent, 1 bar, 2 one line at the end.
        interval: minimum seconds between two redraws.
        stateful_metrics: names whose values are shown as given; the others are averaged over
            the steps seen so far (Keras semantics). ``"all"`` shows every value as given.
        unit_name: what a step is called ("step", "sample").
        stream: where to write (default: ``sys.stdout`` at each write).
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 unit_name="step", stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._all_stateful = stateful_metrics == "all"
        self.stateful_metrics = set() if self._all_stateful else set(stateful_metrics or ())
        self._stream = stream
        self._dynamic = is_dynamic_display(self.stream)
        self._values: dict = {}
        self._seen_so_far = 0
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._prev_width = 0

    @property
    def stream(self):
        return sys.stdout if self._stream is None else self._stream

    def update(self, current, values=None, finalize=None):
        """Record step ``current`` with ``values`` (pairs ``(name, value)``) and redraw if due."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or ():
            if self._all_stateful or k in self.stateful_metrics or finalize:
                self._values[k] = [v, 1]
            else:
                n = max(current - self._seen_so_far, 1)
                acc = self._values.get(k)
                if acc is None:
                    self._values[k] = [v * n, n]
                else:
                    acc[0] += v * n
                    acc[1] += n
        self._seen_so_far = current
        now = time.time()
        per_unit = self._step_duration(current, now)
        if self.verbose == 1:
            if not self._dynamic and not finalize:
                return
            if self._dynamic and not finalize and now - self._last_update < self.interval:
                return
            self._draw(current, now, per_unit, finalize)
        elif self.verbose == 2 and finalize:
            self._write(self._line(current, now, per_unit, finalize, colour=False, bar=False) + "\n")
        self._last_update = now

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    # -- rendering ---------------------------------------------------------------------------
    def _draw(self, current, now, per_unit, finalize):
        line = self._line(current, now, per_unit, finalize, colour=self._dynamic, bar=True)
        if not self._dynamic:
            self._write(line + "\n")
            return
        visible = len(self._line(current, now, per_unit, finalize, colour=False, bar=True))
        pad = " " * max(self._prev_width - visible, 0)
        self._write("\b" * self._prev_width + "\r" + line + pad + ("\n" if finalize else ""))
        self._prev_width = visible

    def _line(self, current, now, per_unit, finalize, colour, bar):
        def bold(s):
            return f"\x1b[1m{s}\x1b[0m" if colour else s

        parts = []
        if self.target is not None and self.target > 0:
            digits = int(math.log10(self.target)) + 1
            count = f"%{digits}d/%d" % (current, self.target)
        else:
            count = "%7d/Unknown" % current
        known = self.target is not None and self.target > 0
        if bar:
            text = bold(count)
            if known:
                done = min(int(self.width * current / self.target), self.width)
                if colour:
                    text += " "
                    if done:
                        text += "\x1b[32m" + "━" * done + "\x1b[0m"
                    text += "\x1b[37m" + "━" * (self.width - done) + "\x1b[0m"
                else:
                    text += " " + "━" * self.width
            parts.append(text)
            if known and not finalize:
                parts.append(" " + bold(format_duration(per_unit * (self.target - current))))
            else:
                parts.append(" " + bold(f"{now - self._start:.0f}s"))
            parts.append(" " + format_time_per_unit(per_unit, self.unit_name))
        else:  # verbose=2 line: "750/750 - 5s - 6ms/step"
            parts.append(f"{count} - {now - self._start:.0f}s - {format_time_per_unit(per_unit, self.unit_name)}")
        for k, (total, n) in self._values.items():
            parts.append(f" - {k}: {format_value(total / max(1, n))}")
        return "".join(parts)

    def _write(self, text):
        stream = self.stream
        stream.write(text)
        stream.flush()

    def _step_duration(self, current, now):
        """Seconds per step, ignoring the (compile-heavy in Keras, warm-up here) first step."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_unit
