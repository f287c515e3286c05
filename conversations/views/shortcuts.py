"""View helpers: owned objects or 404, and one view with two renderings (page or htmx fragment)."""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from conversations import sidebar

P = ParamSpec("P")
T = TypeVar("T")


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it: `htmx` says whether and how htmx sent it.

    For type checking only (django-htmx docs, "Type hints"); views receive
    Django's request classes, to which the middleware adds the attribute.
    """

    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """The request of a @login_required view: its user is signed in, never AnonymousUser (django-stubs README)."""

    user: User


def get_owned_or_404(selector: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Return what `selector` (a read scoped to the asking user) returns, or raise Http404.

    Selectors raise their model's DoesNotExist both for an unknown id and for
    another user's object; both become the same 404, so a page never tells
    whether someone else's object exists.
    """
    try:
        return selector(*args, **kwargs)
    except ObjectDoesNotExist:
        raise Http404 from None


def render_page(
    request: AuthenticatedHttpRequest, template: str, partial: str, context: dict, status: int = 200
) -> HttpResponse:
    """Render the whole page, or only its main panel for an htmx request (one view, two renderings)."""
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, partial, context, status=status)
    context["sidebar"] = sidebar.conversation_page(user=request.user)
    return render(request, template, context, status=status)
