"""View helpers: owned objects or 404, and one view with two renderings (page or htmx fragment)."""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from conversations import sidebar

P = ParamSpec("P")
T = TypeVar("T")


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


def render_page(request: HttpRequest, template: str, partial: str, context: dict, status: int = 200) -> HttpResponse:
    """Render the whole page, or only its main panel for an htmx request (one view, two renderings)."""
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, partial, context, status=status)
    context["sidebar"] = sidebar.conversation_page(user=request.user)
    return render(request, template, context, status=status)
