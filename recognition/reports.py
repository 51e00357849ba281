"""Evaluation reports drawn as pictures: the confusion matrix as a self-contained SVG heat map."""

from __future__ import annotations

from html import escape

CELL_PX = 34
LABEL_PX = 110


def confusion_svg(labels: list[str], confusion: list[list[int]]) -> str:
    """An SVG heat map, rows = true label, columns = predicted; darker = a larger share of the row."""
    n = len(labels)
    size = LABEL_PX + n * CELL_PX
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img" '
        f'aria-label="Confusion matrix: rows are true labels, columns predicted labels" '
        f'font-family="sans-serif" font-size="11">'
    ]
    for i, label in enumerate(labels):
        y = LABEL_PX + i * CELL_PX + CELL_PX / 2 + 4
        x = LABEL_PX + i * CELL_PX + CELL_PX / 2
        parts.append(f'<text x="{LABEL_PX - 4}" y="{y}" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<text transform="translate({x + 4},{LABEL_PX - 4}) rotate(-60)">{escape(label)}</text>'
        )
    for i, row in enumerate(confusion):
        total = sum(row) or 1
        for j, count in enumerate(row):
            share = count / total
            colour = _cell_colour(share, correct=i == j)
            x, y = LABEL_PX + j * CELL_PX, LABEL_PX + i * CELL_PX
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL_PX}" height="{CELL_PX}" fill="{colour}" stroke="#fff">'
                f"<title>true {escape(labels[i])}, predicted {escape(labels[j])}: {count}</title></rect>"
            )
            if count:
                text_colour = "#fff" if share > 0.5 else "#222"
                parts.append(
                    f'<text x="{x + CELL_PX / 2}" y="{y + CELL_PX / 2 + 4}" text-anchor="middle" '
                    f'fill="{text_colour}">{count}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def _cell_colour(share: float, *, correct: bool) -> str:
    """Blue shades on the diagonal (right), red shades off it (mistakes); white for nothing."""
    base = (33, 102, 172) if correct else (178, 24, 43)
    r, g, b = (round(255 - (255 - c) * share) for c in base)
    return f"#{r:02x}{g:02x}{b:02x}"


def score_shown(value: float | None) -> str:
    """A score as reports print it; "-" for one not measured (see `recognition.training.evaluate_head`)."""
    return "-" if value is None else f"{value:.3f}"
