import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

MB = 1024 * 1024
# Where attachments' files are stored in the default storage, a folder per owner.
ATTACHMENTS_FOLDER = "attachments"


def attachment_path(instance: "Attachment", filename: str) -> str:
    """Return where an attachment's file is stored: under its owner's folder, named by its public id.

    The uploaded name is never part of the path (it is kept in `Attachment.name`
    for display only), so no name can reach outside the storage's folder.
    """
    return f"{ATTACHMENTS_FOLDER}/{instance.owner_id}/{instance.public_id.hex}{instance.extension}"


class Attachment(models.Model):
    """An image or a text document a user attached to a message, its file in the default storage.

    An upload is first unattached (`message` None: in the composer); sending
    the message attaches it. Documents keep their extracted text in `text`,
    which is what the model sees; the file is what its owner downloads.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", _("image")
        DOCUMENT = "document", _("document")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(
        "conversations.Message", on_delete=models.CASCADE, null=True, blank=True, related_name="attachments"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The uploaded file's name, cleaned for display (attachments.inspect.clean_name); never a path.
    name = models.CharField(max_length=255)
    # The type found in the content (attachments.inspect), not the one the browser claimed.
    content_type = models.CharField(max_length=100)
    file = models.FileField(upload_to=attachment_path, max_length=255)
    size_bytes = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # A document's text as the model sees it; `text_cut`: cut to the policy's max_document_chars.
    text = models.TextField(blank=True)
    text_cut = models.BooleanField(default=False)
    pages = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["owner", "message"], name="attachment_owner_message")]

    def __str__(self) -> str:
        return self.name

    @property
    def extension(self) -> str:
        """The stored file's extension, from the detected type (".png", ".pdf", ...), "" when none."""
        return _EXTENSIONS.get(self.content_type, "")

    @property
    def is_image(self) -> bool:
        return self.kind == self.Kind.IMAGE


_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "text/plain": ".txt",
}


class AttachmentPolicy(models.Model):
    """The site's limits on attachments, one row, edited in the admin (`selectors.policy_get` creates it)."""

    images_allowed = models.BooleanField(_("images allowed"), default=True, help_text=_("PNG, JPEG, WebP, GIF."))
    pdf_allowed = models.BooleanField(_("PDF documents allowed"), default=True)
    docx_allowed = models.BooleanField(_("Word (DOCX) documents allowed"), default=True)
    text_allowed = models.BooleanField(
        _("text files allowed"), default=True, help_text=_("Plain text, Markdown, code: any UTF-8 text.")
    )
    max_file_mb = models.PositiveIntegerField(_("largest file (MB)"), default=20, validators=[MinValueValidator(1)])
    max_user_storage_mb = models.PositiveIntegerField(
        _("storage per user (MB)"),
        default=500,
        help_text=_("What one user's attachments may take up in all; 0: no limit."),
    )
    max_files_per_message = models.PositiveIntegerField(
        _("files per message"), default=10, validators=[MinValueValidator(1)]
    )
    max_document_chars = models.PositiveIntegerField(
        _("longest document text (characters)"),
        default=200_000,
        validators=[MinValueValidator(1000)],
        help_text=_("A document's text is cut here, and the person is told."),
    )
    max_pdf_pages = models.PositiveIntegerField(
        _("PDF pages read"),
        default=500,
        validators=[MinValueValidator(1)],
        help_text=_("Text is read from the first pages only, and the person is told."),
    )
    max_image_side_px = models.PositiveIntegerField(
        _("longest image side sent (pixels)"),
        default=2048,
        validators=[MinValueValidator(64)],
        help_text=_("Larger images are scaled down before they are stored and sent (OpenAI's limit: 2048)."),
    )

    class Meta:
        verbose_name = _("attachment limits")
        verbose_name_plural = _("attachment limits")

    def __str__(self) -> str:
        return str(_("Attachment limits"))
