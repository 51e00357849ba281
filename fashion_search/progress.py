"""Progress bars for long management commands: count, rate and time left, on stderr."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


def progress_bar(*, total: int | None, desc: str, verbosity: int, stream: TextIO | None = None) -> tqdm:
    """A tqdm bar, switched off at --verbosity 0 or when stderr is not a terminal."""
    stream = stream or sys.stderr
    disabled = verbosity == 0 or not getattr(stream, "isatty", lambda: False)()
    return tqdm(total=total, desc=desc, unit="img", file=stream, disable=disabled, dynamic_ncols=True)
