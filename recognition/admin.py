"""Recognizer versions in the admin: train from a zip or a folder, see metrics, make live, roll back."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from recognition.errors import RecognitionError
from recognition.forms import RecognizerVersionAddForm
from recognition.models import RecognizerVersion
from recognition.reports import confusion_svg, score_shown
from recognition.versions import version_create, version_delete, version_make_live, version_roll_back


@admin.register(RecognizerVersion)
class RecognizerVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "progress_shown", "top1", "top2", "held_out", "is_live", "created_at")
    list_filter = ("name", "status", "is_live")
    actions = ["make_live", "make_live_even_if_worse", "roll_back"]
    readonly_fields = ("status", "progress_shown", "failure_reason", "is_live", "made_live_at", "report")

    def get_fields(self, request: HttpRequest, obj: RecognizerVersion | None = None):
        if obj is None:
            return ("name", "source", "upload", "data_dir")
        return ("name", "source", "status", "progress_shown", "failure_reason", "is_live", "made_live_at", "report")

    def get_form(self, request: HttpRequest, obj: RecognizerVersion | None = None, **kwargs: object) -> type:
        if obj is None:
            kwargs["form"] = RecognizerVersionAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: RecognizerVersion | None = None):
        return self.readonly_fields + (("name", "source") if obj else ())

    def save_model(self, request: HttpRequest, obj: RecognizerVersion, form, change: bool) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        created = version_create(
            name=obj.name, source=obj.source, upload=form.cleaned_data.get("upload"), data_dir=obj.data_dir
        )
        obj.pk, obj.version = created.pk, created.version
        self.message_user(request, f"Training {created} in the background; this page shows its progress.")

    def has_delete_permission(self, request: HttpRequest, obj: RecognizerVersion | None = None) -> bool:
        # The live version is not deleted: its recognizer would silently vanish (version_delete).
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_live)

    def delete_model(self, request: HttpRequest, obj: RecognizerVersion) -> None:
        version_delete(version=obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        # Django asks has_delete_permission of every selected version first: a live one stops it all.
        for version in queryset:
            version_delete(version=version)

    @admin.display(description="Progress")
    def progress_shown(self, version: RecognizerVersion) -> str:
        return f"{version.progress:.0%}"

    @admin.display(description="Top-1")
    def top1(self, version: RecognizerVersion) -> str:
        return score_shown(version.metrics.get("evaluation", {}).get("top1"))

    @admin.display(description="Top-2")
    def top2(self, version: RecognizerVersion) -> str:
        return score_shown(version.metrics.get("evaluation", {}).get("top2"))

    @admin.display(description="Held-out photos")
    def held_out(self, version: RecognizerVersion) -> int | str:
        return version.metrics.get("evaluation", {}).get("samples", "-")

    @admin.display(description="Held-out evaluation")
    def report(self, version: RecognizerVersion) -> str:
        evaluation = version.metrics.get("evaluation")
        if not evaluation:
            return "No evaluation yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (label, score_shown(row["precision"]), score_shown(row["recall"]), row["support"])
                for label, row in evaluation["per_class"].items()
            ),
        )
        table = format_html(
            "<p>top-1 {} · top-2 {} · {} held-out photos</p><table><thead><tr><th>label</th><th>precision</th>"
            "<th>recall</th><th>photos</th></tr></thead><tbody>{}</tbody></table>",
            score_shown(evaluation["top1"]),
            score_shown(evaluation.get("top2")),
            evaluation["samples"],
            rows,
        )
        # confusion_svg escapes every label it writes, so the SVG is safe to embed.
        picture = mark_safe(confusion_svg(evaluation["labels"], evaluation["confusion"]))
        return format_html("{}<h3>Confusion matrix</h3>{}", table, picture)

    # Each action changes what serves: offered only to those who may change versions, not to viewers.
    @admin.action(
        description="Make live (refused if it scores worse or learned fewer labels than the live version)",
        permissions=["change"],
    )
    def make_live(self, request: HttpRequest, queryset) -> None:
        self._make_live(request, queryset, allow_worse=False)

    @admin.action(description="Make live even if it scores worse or learned fewer labels", permissions=["change"])
    def make_live_even_if_worse(self, request: HttpRequest, queryset) -> None:
        self._make_live(request, queryset, allow_worse=True)

    def _make_live(self, request: HttpRequest, queryset, *, allow_worse: bool) -> None:
        names = list(queryset.values_list("name", flat=True))
        if len(names) != len(set(names)):  # each would be made live in turn, and only the last stay so
            self.message_user(request, "Select one version per recognizer to make live.", messages.ERROR)
            return
        for version in queryset:
            try:
                version_make_live(version=version, allow_worse=allow_worse)
                self.message_user(request, f"{version} is live.", messages.SUCCESS)
            except RecognitionError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    @admin.action(description="Roll back to the previously live version", permissions=["change"])
    def roll_back(self, request: HttpRequest, queryset) -> None:
        for name in sorted(set(queryset.values_list("name", flat=True))):
            try:
                version = version_roll_back(name=name)
                self.message_user(request, f"Rolled back: {version} is live.", messages.SUCCESS)
            except RecognitionError as exc:
                self.message_user(request, exc.message, messages.ERROR)
