"""Label sets and score thresholds of every recognizer: the one place that names them.

Admin choices, the API, templates and tests import these values; nothing copies them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelSet:
    """An attribute's ordered labels and the minimum scores to store and to show a tag."""

    attribute: str
    labels: tuple[str, ...]
    display_names: dict[str, str]
    store_min_score: float
    show_min_score: float
    # The head's input: "embedding", or "embedding+colour" (see recognition/recognizers.py).
    features: str = "embedding"

    def display(self, label: str) -> str:
        return self.display_names.get(label, label.replace("-", " ").capitalize())


TYPE = LabelSet(
    attribute="type",
    # The folder names of clothing-small, sorted: the index of a label is its class index.
    labels=(
        "dress", "hat", "longsleeve", "outwear", "pants",
        "shirt", "shoes", "shorts", "skirt", "t-shirt",
    ),
    display_names={"longsleeve": "Long-sleeve top", "outwear": "Outerwear", "t-shirt": "T-shirt"},
    store_min_score=0.05,
    show_min_score=0.10,
)

PATTERN = LabelSet(
    attribute="pattern",
    labels=("check", "dotted", "floral", "plain", "print", "striped"),
    display_names={},
    store_min_score=0.05,
    show_min_score=0.15,
)

COLOUR = LabelSet(
    attribute="colour",
    labels=(
        "beige", "black", "blue", "brown", "green", "grey", "multi",
        "navy", "orange", "pink", "purple", "red", "white", "yellow",
    ),
    display_names={},
    store_min_score=0.05,
    show_min_score=0.15,
    features="embedding+colour",
)

STYLE = LabelSet(
    attribute="style",
    labels=("business", "casual", "formal", "party", "sporty"),
    display_names={},
    store_min_score=0.05,
    show_min_score=0.15,
)

LABEL_SETS: dict[str, LabelSet] = {ls.attribute: ls for ls in (TYPE, PATTERN, COLOUR, STYLE)}
ATTRIBUTES: tuple[str, ...] = tuple(LABEL_SETS)
