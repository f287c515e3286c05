"""Reads of import jobs, scoped to the user who asks."""

from uuid import UUID

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from transfer.models import ImportJob

IMPORT_JOBS_SHOWN = 20


def import_job_list_for_user(*, user: User, limit: int = IMPORT_JOBS_SHOWN) -> QuerySet[ImportJob]:
    """Return `user`'s latest import jobs, newest first, at most `limit`."""
    return ImportJob.objects.filter(owner=user).order_by("-created_at", "-id")[:limit]


def import_job_get_for_user(*, user: User, public_id: UUID | str) -> ImportJob:
    """Return import job `public_id` if `user` started it.

    Raises:
        ImportJob.DoesNotExist: no such job, or another user's (callers answer 404).
    """
    if not getattr(user, "is_authenticated", False):
        raise ImportJob.DoesNotExist
    try:
        return ImportJob.objects.get(owner=user, public_id=public_id)
    except (ValueError, TypeError, ValidationError):  # Not a UUID.
        raise ImportJob.DoesNotExist from None
