"""Close a user's open sockets when their session ends or their account changes, on every worker.

A socket is signed in once, when it opens; these receivers tell the
sockets, through the user's channel layer group (`events.user_group`), when
that may no longer hold:

- sign-out (`user_logged_out`): the sockets of that session close;
- any save of the user but a sign-in's `last_login` (a password change, a
  deactivation, an admin's edit) and its deletion: every socket of the user
  checks that its session still signs it in, and closes if not (a password
  change keeps the session it was made in, as `update_session_auth_hash` does).

The sockets close with 4401 (consumers.py), as an anonymous one does.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from conversations import events


@receiver(user_logged_out, dispatch_uid="conversations.sockets_close_on_logout")
def sockets_close_on_logout(sender, request, user, **kwargs) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is None or not session_key:
        return
    ended: events.SessionEnded = {"type": "session.ended", "session_hash": events.session_hash(session_key)}
    events.send_on_commit(events.user_group(user.pk), lambda: ended)


def _account_changed(sender, instance, created: bool = False, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and set(update_fields) == {"last_login"}):
        return
    changed: events.AccountChanged = {"type": "account.changed"}
    events.send_on_commit(events.user_group(instance.pk), lambda: changed)


def connect() -> None:
    """Connect the receivers of the user model (called from the app's ready())."""
    user_model = get_user_model()
    post_save.connect(_account_changed, sender=user_model, dispatch_uid="conversations.account_changed_save")
    post_delete.connect(_account_changed, sender=user_model, dispatch_uid="conversations.account_changed_delete")
