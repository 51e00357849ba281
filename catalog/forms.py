"""The shopper's upload form, and the admin's catalog photo form."""

from __future__ import annotations

from django import forms
from django.core.files.uploadedfile import UploadedFile

from catalog.models import Photo
from catalog.services.tagging import CATALOG_MAX_BYTES, CATALOG_MAX_PIXELS
from recognition.errors import ImageTooLarge, InvalidImage
from recognition.images import decode_image

# Enough to prove a JPEG decodes, at a fraction of the cost of decoding it whole.
CHECK_DRAFT_SIZE = 256


class PhotoSearchForm(forms.Form):
    image = forms.FileField(
        label="Photo of a garment",
        widget=forms.ClearableFileInput(attrs={"accept": "image/*", "capture": "environment"}),
    )


class CatalogPhotoForm(forms.ModelForm):
    """A merchant's photo is decoded as tagging will decode it, so a file the tagger would refuse
    (a BMP, a polyglot, 81 megapixels) is refused on the form instead of saved and failed later."""

    class Meta:
        model = Photo
        fields = ("item", "image")

    def clean_image(self) -> object:
        image = self.cleaned_data.get("image")
        if isinstance(image, UploadedFile):  # a new file; an unchanged one was checked when it came
            try:
                decode_image(
                    image.read(), max_bytes=CATALOG_MAX_BYTES, max_pixels=CATALOG_MAX_PIXELS,
                    draft_size=CHECK_DRAFT_SIZE,
                )
            except (InvalidImage, ImageTooLarge) as exc:
                raise forms.ValidationError(exc.message) from None
            finally:
                image.seek(0)
        return image
