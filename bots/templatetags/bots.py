from django import template
from django.contrib.auth.models import User
from django.db.models import QuerySet

from bots import selectors
from bots.models import BotIdentity

register = template.Library()


@register.simple_tag
def im_identities(user: User) -> QuerySet[BotIdentity]:
    """Return the IM identities linked to `user` (the account page's section is included by the page's own view)."""
    return selectors.identity_list_for_user(user=user)
