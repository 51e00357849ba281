"""The shopper's upload form: one image file."""

from __future__ import annotations

from django import forms


class PhotoSearchForm(forms.Form):
    image = forms.FileField(
        label="Photo of a garment",
        widget=forms.ClearableFileInput(attrs={"accept": "image/*", "capture": "environment"}),
    )
