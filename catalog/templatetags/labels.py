"""Show tag values as shoppers read them ("Outerwear", not the model's "outwear")."""

from __future__ import annotations

from django import template

from recognition.labels import LABEL_SETS

register = template.Library()


@register.filter
def label_display(value: str, attribute: str) -> str:
    """A label's display name; a value outside the attribute's label set (a merchant's own) as it is."""
    label_set = LABEL_SETS.get(attribute)
    return label_set.display(value) if label_set and value in label_set.labels else value
