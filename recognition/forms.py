"""The admin's form for a new recognizer version: refuse what could only fail in the worker, up front."""

from __future__ import annotations

import zipfile

from django import forms

from recognition.models import RecognizerVersion
from recognition.recognizer_names import recognizer_name_refusal
from recognition.versions import training_folder_refusal

# Built-in versions come with the app, and catalog ones from "Train … from hand-set tags".
SOURCES_OFFERED = (RecognizerVersion.Source.ZIP, RecognizerVersion.Source.FOLDER)


class RecognizerVersionAddForm(forms.ModelForm):
    class Meta:
        model = RecognizerVersion
        fields = ("name", "source", "upload", "data_dir")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [(source.value, source.label) for source in SOURCES_OFFERED]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if refusal := recognizer_name_refusal(name):  # the slug and length rules the field checked already
            raise forms.ValidationError(refusal)
        return name

    def clean(self) -> dict:
        cleaned = super().clean()
        source, upload, data_dir = cleaned.get("source"), cleaned.get("upload"), cleaned.get("data_dir", "")
        if source == RecognizerVersion.Source.ZIP:
            if not upload:
                self.add_error("upload", "Choose the zip to train from (a folder of photos per label).")
            elif not zipfile.is_zipfile(upload):
                self.add_error("upload", "This file is not a zip archive.")
            if data_dir:
                self.add_error("data_dir", "A folder is only read when the source is a folder on the server.")
        elif source == RecognizerVersion.Source.FOLDER:
            if upload:
                self.add_error("upload", "A zip is only read when the source is an uploaded zip.")
            if not data_dir:
                self.add_error("data_dir", "Enter the folder's full path on the server.")
            elif refusal := training_folder_refusal(data_dir):
                self.add_error("data_dir", refusal)
            # Whether the folder exists is for the worker to find out: it may run on another host than
            # this web process, and it records a failure with the reason.
        return cleaned
