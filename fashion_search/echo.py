"""How much of a refused value an error message repeats, wherever the refusal is made."""

from __future__ import annotations

# Enough to recognise the value, not so much that a pasted paragraph fills the page or terminal.
MAX_ECHO_CHARS = 40


def value_echoed(value: str) -> str:
    """A refused value as an error message repeats it: at most MAX_ECHO_CHARS characters, marked when cut."""
    return value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + "..."
