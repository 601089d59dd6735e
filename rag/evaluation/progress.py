"""Progress bars (tqdm, imported lazily): one per mode's questions (:func:`progress_bar`) and
one per stage of an index build (:class:`BuildProgress`)."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar", "BuildProgress"]


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "q") -> Any:
    """A tqdm bar of ``total`` steps; a disabled one (drawing nothing) unless ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False)


class BuildProgress:
    """A progress callback ``(stage, done, total)`` that drives one tqdm bar per stage."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._stage = ""

    def __enter__(self) -> BuildProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        if stage != self._stage or self._bar is None:
            self.__exit__()
            self._stage = stage
            self._bar = progress_bar(total, f"build: {stage}", True, unit="it")
        self._bar.n = done
        self._bar.refresh()
