"""The merchant's catalog: items, their photos, and the tags on each photo."""

from __future__ import annotations

import numpy as np
from django.core.validators import MinValueValidator, RegexValidator, URLValidator
from django.db import models
from numpy.typing import NDArray

from catalog.embedding_blobs import embedding_from_blob
from recognition.labels import ATTRIBUTES

# A page a shopper is sent to is a web page: URLField alone takes ftp://. The import checks its CSV cells
# with this one too. A code of its own: the field's message for "invalid" ("Enter a valid URL.") would
# replace this one.
SHOP_URL_VALIDATOR = URLValidator(
    schemes=["http", "https"], message="Enter an http:// or https:// address.", code="not_web"
)


class Item(models.Model):
    name = models.CharField(max_length=200)
    brand = models.CharField(max_length=100, blank=True)
    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0, "A price cannot be negative.")],
    )
    currency = models.CharField(
        max_length=3,
        default="EUR",
        validators=[RegexValidator(r"^[A-Z]{3}\Z", "Enter a three-letter currency code in capitals, such as EUR.")],
    )
    shop_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="The product page on the shop.",
        validators=[SHOP_URL_VALIDATOR],
    )
    description = models.TextField(blank=True)
    # Natural key of an imported item: the folder it came from (`import_catalog --source`, by default the
    # folder's name) and its image's path in that folder, so that importing the same folder twice updates
    # instead of duplicating, and another supplier's folder with the same paths makes items of its own.
    # "": imported before sources were recorded; the next import of its path adopts it.
    import_source = models.CharField(max_length=100, blank=True, default="", editable=False)
    import_key = models.CharField(max_length=500, null=True, blank=True, editable=False)
    # The CSV details the last import applied (as text), so that a rerun applies only the values the CSV
    # changed since and never reverts an edit made in the admin. None: imported before this was kept.
    imported_details = models.JSONField(null=True, blank=True, editable=False)
    # SHA-256 (hex) of the image file the last import took, so that a rerun takes a file changed in the
    # folder since, and never reverts a photo replaced in the admin. Empty: imported before this was kept.
    # Indexed: a new path whose bytes an item of the source already has is that item's file moved.
    imported_image_sha256 = models.CharField(max_length=64, blank=True, default="", editable=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # import_key first: a lookup by path alone (another source's items of that path) uses it too
            models.UniqueConstraint(fields=["import_key", "import_source"], name="item_import_key_source_unique")
        ]

    def __str__(self) -> str:
        return self.name


class ImportSource(models.Model):
    """A name import_catalog keeps a folder's items under, and the folder it last imported them from.

    By default a folder is imported under its own name; two suppliers' folders of the same name
    (/srv/acme/photos, /srv/globex/photos) would then share their items. The folder recorded here
    tells them apart: a second folder of a name whose folder is still there is refused until it is
    given a name of its own, while a folder whose recorded one is gone is taken as that one moved.
    """

    name = models.CharField(max_length=100, unique=True)
    folder = models.CharField(max_length=1000)
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.folder})"


class DeletedImport(models.Model):
    """An imported item that a merchant deleted: importing its folder again leaves its image out.

    Without it a rerun (`make run` imports the demo at every start) brought a deleted item back as new.
    `import_catalog --restore-deleted`, or deleting this record in the admin, lets the image in again.
    """

    import_source = models.CharField(max_length=100, blank=True, default="")  # as Item.import_source
    import_key = models.CharField(max_length=500)
    deleted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["import_source", "import_key"]
        verbose_name = "deleted imported item"
        constraints = [
            models.UniqueConstraint(fields=["import_key", "import_source"], name="deletedimport_key_source_unique")
        ]

    def __str__(self) -> str:
        return f"{self.import_source}: {self.import_key}" if self.import_source else self.import_key


class Photo(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        TAGGED = "tagged", "Tagged"
        FAILED = "failed", "Failed"

    item = models.ForeignKey(Item, related_name="photos", on_delete=models.CASCADE)
    image = models.ImageField(upload_to="photos/%Y/%m/")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    # float32 L2-normalised embedding, with the backbone version that produced it, so a backbone
    # change is visible and photos can be embedded again.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=100, blank=True, editable=False)
    tagged_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "id"]

    def __str__(self) -> str:
        return f"Photo {self.pk} of {self.item}"

    def embedding_vector(self) -> NDArray[np.float32] | None:
        """The stored embedding, or None when there is none or it cannot be read (catalog.embedding_blobs)."""
        if self.embedding is None:
            return None
        return embedding_from_blob(self.embedding)


class Tag(models.Model):
    class Source(models.TextChoices):
        MODEL = "model", "Model"
        HAND = "hand", "Hand-set"

    photo = models.ForeignKey(Photo, related_name="tags", on_delete=models.CASCADE)
    attribute = models.CharField(max_length=30, choices=[(a, a) for a in ATTRIBUTES])
    value = models.CharField(max_length=50)
    score = models.FloatField(default=1.0)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.HAND)
    model_version = models.CharField(max_length=100, blank=True)
    # Whether this is the tag its photo shows for the attribute (`catalog.selectors.photo_tags_best`), kept
    # by every writer of tags through `catalog.services.best_tags.tags_best_mark`, so that "photos whose
    # colour is red" is one index read instead of every red photo's colour tags compared in Python.
    # The database's own default too, so a worker still on the previous version, which writes no flag,
    # can insert tags during an upgrade (`manage.py mark_best_tags` then marks them).
    is_best = models.BooleanField(default=False, db_default=False, editable=False)

    class Meta:
        ordering = ["attribute", "-score"]
        # One shown tag per photo and attribute: the database refuses a second one.
        constraints = [
            models.UniqueConstraint(fields=["photo", "attribute", "value"], name="unique_tag_per_photo"),
            models.UniqueConstraint(
                fields=["photo", "attribute"], condition=models.Q(is_best=True), name="one_best_tag_per_attribute"
            ),
        ]
        # "Photos with a colour tag among these values" reads these indexes instead of scanning every tag:
        # Complete the look at 100k photos went from 140-230 ms to 40-100 ms with the first
        # (bench/README.md, "Complete the look at 100k photos"); refine and text search read the second.
        indexes = [
            models.Index(fields=["attribute", "value", "photo"], name="tag_attribute_value_photo"),
            # With the score in it, refine and text search read best tags without visiting the table.
            models.Index(
                fields=["attribute", "value", "photo"],
                include=["score"],
                condition=models.Q(is_best=True),
                name="tag_best_value_photo",
            ),
            # Best first: a text search for one tag ("casual") reads its first page's items from here
            # instead of grouping every match (catalog.services.text_search).
            models.Index(
                fields=["attribute", "value", "-score", "photo"],
                condition=models.Q(is_best=True),
                name="tag_best_value_score",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.attribute}: {self.value} ({self.score:.2f}, {self.source})"


class Look(models.Model):
    """An outfit curated by a merchant; items that share looks are suggested for each other."""

    name = models.CharField(max_length=200)
    items = models.ManyToManyField(Item, related_name="looks")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
