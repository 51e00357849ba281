"""Merchant screens. Hooks call services; the logic lives there."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Field, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from kombu.exceptions import OperationalError as BrokerUnavailable

from catalog.forms import CatalogPhotoForm
from catalog.models import DeletedImport, Item, Look, Photo, Tag
from catalog.selectors import tagging_counts
from catalog.services.best_tags import tags_best_mark
from catalog.services.index import index_rebuild_queue
from catalog.services.items import photos_queue_tagging
from catalog.services.tagging import photo_tag_set_by_hand
from catalog.services.training_export import recognizer_train_from_hand_tags
from fashion_search.admin_input import is_row_number
from fashion_search.broker import broker_unreachable
from fashion_search.echo import value_echoed
from fashion_search.wording import counted
from recognition.errors import RecognitionError
from recognition.labels import ATTRIBUTES, LABEL_SETS


def _thumbnail(photo: Photo) -> str:
    if not photo.image:
        return "-"
    return format_html('<img src="{}" alt="{}" style="max-height:80px;max-width:80px">', photo.image.url, photo)


def _tag_list(photo: Photo) -> str:
    tags = sorted(photo.tags.all(), key=lambda t: (t.attribute, -t.score))[:6]
    if not tags:
        return "-"
    return format_html_join(
        ", ", "{}: {} ({}, {})", ((t.attribute, t.value, f"{t.score:.2f}", t.get_source_display()) for t in tags)
    )


class PhotoInline(admin.TabularInline):
    model = Photo
    form = CatalogPhotoForm
    extra = 1
    fields = ("image", "thumbnail", "status", "tag_summary")
    readonly_fields = ("thumbnail", "status", "tag_summary")

    @admin.display(description="Preview")
    def thumbnail(self, photo: Photo) -> str:
        return _thumbnail(photo)

    @admin.display(description="Tags (score, source)")
    def tag_summary(self, photo: Photo) -> str:
        return _tag_list(photo) if photo.pk else "-"


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("name", "brand", "price", "currency", "shop_url", "photo_count")
    search_fields = ("name", "brand", "description")
    inlines = [PhotoInline]

    @admin.display(description="Photos")
    def photo_count(self, item: Item) -> int:
        return item.photos.count()

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is Photo:
            new_or_changed = [photo.pk for photo in formset.new_objects + [obj for obj, _ in formset.changed_objects]]
            photos_queue_tagging(photo_ids=new_or_changed, force=True, image_changed=True)


class TagForm(forms.ModelForm):
    """A merchant's tag: the value must be one of the attribute's labels, or refine filters never match it."""

    class Meta:
        model = Tag
        fields = ("attribute", "value")

    def clean(self) -> dict[str, object]:
        data = super().clean()
        attribute, value = data.get("attribute"), data.get("value")
        # Only rows the merchant typed in: an untouched old row must not block saving the others.
        if attribute in LABEL_SETS and value is not None and self.has_changed():
            labels = LABEL_SETS[attribute].labels
            normalised = value.strip().lower()
            if normalised in labels:
                data["value"] = normalised
            else:
                self.add_error(
                    "value", f"{value_echoed(value)!r} is not a {attribute} label; choose one of: {', '.join(labels)}."
                )
        return data


class TagFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        """Say why a row that no longer exists cannot be saved: its error sits on a hidden field, so the
        page showed only "Please correct the errors below"."""
        super().clean()
        if any("id" in form.errors for form in self.forms):
            raise ValidationError(
                "This photo's tags changed since the page was opened (it was tagged again): "
                "reload the page and make the change again."
            )

    def validate_unique(self) -> None:
        """Refuse one value typed twice; a model's candidate with that value gives way instead.

        Django's own check counts an untouched model row too, so setting by hand a value the model had
        also guessed asked the merchant to delete the model's row first. Saving replaces the model's
        tags of that attribute anyway (photo_tag_set_by_hand).
        """
        rows = [form for form in self.forms if form.is_valid() and form.cleaned_data and form not in self.deleted_forms]
        # One hand-set value an attribute: it is the one the photo shows, and a second would hide behind it.
        hand_set = {
            form.instance.attribute: form.instance.value
            for form in rows
            if not form.has_changed() and form.instance.source == Tag.Source.HAND
        }
        duplicate = False
        for form in rows:
            if not form.has_changed():
                continue
            attribute, value = form.cleaned_data["attribute"], form.cleaned_data["value"]
            if hand_set.get(attribute) == value:
                form.add_error("value", f"This photo already has {attribute} {value!r} set by hand.")
                duplicate = True
            elif attribute in hand_set:
                form.add_error(
                    "value",
                    f"This photo's {attribute} is already set by hand to {hand_set[attribute]!r}; change or delete "
                    "that row instead.",
                )
                duplicate = True
            hand_set.setdefault(attribute, value)
        if duplicate:
            raise ValidationError("Please correct the duplicate tags below.")


class TagInline(admin.TabularInline):
    model = Tag
    form = TagForm
    formset = TagFormSet
    extra = 1
    fields = ("attribute", "value", "score", "source")
    readonly_fields = ("score", "source")


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    form = CatalogPhotoForm
    list_display = ("id", "thumbnail", "item", "status", "tag_summary", "embedding_model", "tagged_at")
    list_filter = ("status",)
    list_select_related = ("item",)
    readonly_fields = ("thumbnail", "status", "failure_reason", "embedding_model", "tagged_at")
    inlines = [TagInline]
    actions = ["retag_selected"]
    change_list_template = "admin/catalog/photo/change_list.html"

    @admin.display(description="Preview")
    def thumbnail(self, photo: Photo) -> str:
        return _thumbnail(photo)

    @admin.display(description="Tags (score, source)")
    def tag_summary(self, photo: Photo) -> str:
        return _tag_list(photo)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("tags")

    def save_model(self, request: HttpRequest, obj: Photo, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change or "image" in form.changed_data:
            photos_queue_tagging(photo_ids=[obj.pk], force=True, image_changed=True)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        # A tag typed in by a merchant is hand-set, whatever the form said.
        instances = formset.save(commit=False)
        for tag in formset.deleted_objects:
            tag.delete()
        for tag in instances:
            if tag.pk is not None:
                Tag.objects.filter(pk=tag.pk).delete()  # an edited tag is replaced by the merchant's
            photo_tag_set_by_hand(photo=tag.photo, attribute=tag.attribute, value=tag.value)
        if formset.deleted_objects:
            tags_best_mark(photo_ids=[form.instance.pk])
        # Setting a tag by hand deleted the model's guesses for its attribute: with the hand-set tag
        # gone too, the model tags the photo again, or the attribute would stay empty for good.
        handed_back = {tag.attribute for tag in formset.deleted_objects if tag.source == Tag.Source.HAND}
        if handed_back - set(form.instance.tags.values_list("attribute", flat=True)):
            photos_queue_tagging(photo_ids=[form.instance.pk], force=True)

    @admin.action(description="Re-tag selected photos", permissions=["change"])
    def retag_selected(self, request: HttpRequest, queryset) -> None:
        if self._broker_unreachable(request):
            return
        count = photos_queue_tagging(photo_ids=list(queryset.values_list("pk", flat=True)), force=True)
        self.message_user(
            request,
            f"Queued {counted(count, 'photo')} for tagging; tagged ones stay searchable with their current tags "
            "until then.",
            messages.SUCCESS,
        )

    def _broker_unreachable(self, request: HttpRequest) -> bool:
        """Say so before queueing taggings that cannot be sent: "queued" would be untrue, and a tagged photo
        whose tagging is not sent stays as it was without a word."""
        unreachable = broker_unreachable()
        if unreachable:
            message = f"Nothing was queued: {unreachable.rstrip('.')}. Try again once it is back."
            self.message_user(request, message, messages.ERROR)
        return bool(unreachable)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = (extra_context or {}) | {"tagging_counts": tagging_counts(), "attributes": ATTRIBUTES}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        own = [
            path("rebuild-index/", self.admin_site.admin_view(self.rebuild_index_view), name="catalog_rebuild_index"),
            path("retry-failed/", self.admin_site.admin_view(self.retry_failed_view), name="catalog_retry_failed"),
            path(
                "train-from-hand-tags/",
                self.admin_site.admin_view(self.train_from_hand_tags_view),
                name="catalog_train_from_hand_tags",
            ),
        ]
        return own + super().get_urls()

    def rebuild_index_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if request.method == "POST" and self.has_change_permission(request):
            # Queued, not run here: a rebuild takes minutes at a large catalog (333 s at 1M photos).
            try:
                index_rebuild_queue()
            except BrokerUnavailable as exc:
                self.message_user(
                    request,
                    f"The rebuild could not be queued: the task broker is unreachable ({exc}). Try again once it "
                    "is back, or run `manage.py rebuild_index` on the server.",
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    "Rebuilding the index in the background; search uses the current one until then.",
                    messages.SUCCESS,
                )
        return HttpResponseRedirect(reverse("admin:catalog_photo_changelist"))

    def train_from_hand_tags_view(self, request: HttpRequest) -> HttpResponseRedirect:
        attribute = request.POST.get("attribute", "")
        if request.method == "POST" and request.user.has_perm("recognition.add_recognizerversion"):
            try:
                version = recognizer_train_from_hand_tags(attribute=attribute)
            except RecognitionError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Training {version} from hand-set tags.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:recognition_recognizerversion_change", args=[version.pk]))
        return HttpResponseRedirect(reverse("admin:catalog_photo_changelist"))

    def retry_failed_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if request.method == "POST" and self.has_change_permission(request) and not self._broker_unreachable(request):
            with transaction.atomic():
                failed = list(Photo.objects.filter(status=Photo.Status.FAILED).values_list("pk", flat=True))
                count = photos_queue_tagging(photo_ids=failed, force=True)
            self.message_user(request, f"Queued {counted(count, 'failed photo')} for tagging again.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:catalog_photo_changelist"))


class RowNumbersChoiceField(forms.ModelMultipleChoiceField):
    """Refuses a value that cannot be a row number before the query: past 64 bits SQLite raises OverflowError."""

    def _check_values(self, value: list) -> QuerySet:
        for pk in value:
            if not is_row_number(str(pk)):
                raise ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": value_echoed(str(pk))},
                )
        return super()._check_values(value)


@admin.register(DeletedImport)
class DeletedImportAdmin(admin.ModelAdmin):
    """Imported items a merchant deleted, which imports leave out; deleting a record here lets the next
    import bring its image back as a new item."""

    list_display = ("import_key", "import_source", "deleted_at")
    list_filter = ("import_source",)
    search_fields = ("import_key", "import_source")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DeletedImport | None = None) -> bool:
        return False


@admin.register(Look)
class LookAdmin(admin.ModelAdmin):
    """Curated outfits: items that share a look are suggested for each other on "Complete the look"."""

    list_display = ("name", "item_count", "created_at")
    search_fields = ("name", "items__name")
    filter_horizontal = ("items",)

    def formfield_for_manytomany(self, db_field: Field, request: HttpRequest, **kwargs: object) -> forms.Field:
        if db_field.name == "items":
            kwargs["form_class"] = RowNumbersChoiceField
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="Items")
    def item_count(self, look: Look) -> int:
        return look.items.count()
