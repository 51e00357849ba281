"""Numbers typed into addresses and forms, read only when written as plain ASCII digits."""

from __future__ import annotations


def plain_number(text: str, *, max_digits: int) -> int | None:
    """`text` as a number when it is at most `max_digits` ASCII digits, else None.

    Python's int() also reads " 4", "4_0", "+4" and other scripts' digits, and refuses strings of
    more than 4,300 digits with a ValueError of its own; the length is checked before it runs.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    return int(text)
