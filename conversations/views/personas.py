"""A user's own personas: list, create, edit, delete, for users the admin allows (`personas.create_own_persona`).

The site's personas are read-only here (they are edited in the admin), and
another user's persona, like a missing one, is a 404: every read goes
through `personas.selectors`, scoped to the user.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from conversations.views.shortcuts import AuthenticatedHttpRequest, get_owned_or_404, render_page
from personas import selectors, services
from personas.forms import OwnPersonaForm


def _allowed(request: AuthenticatedHttpRequest) -> None:
    if not selectors.user_may_create_personas(user=request.user):
        raise PermissionDenied


def _to_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    url = reverse("conversations:persona-list")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
def persona_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the user's own personas, and a form for a new one when they may create personas."""
    may_create = selectors.user_may_create_personas(user=request.user)
    context = {
        "own_personas": list(selectors.persona_list_own(user=request.user)),
        "may_create": may_create,
        "form": OwnPersonaForm() if may_create else None,
    }
    return render_page(request, "personas/list.html", "personas/partials/persona_list.html", context)


@login_required
@require_POST
def persona_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Create a persona of the user's own from the posted form; 403 unless the admin allows it."""
    _allowed(request)
    form = OwnPersonaForm(request.POST)
    if form.is_valid():
        services.persona_save_own(persona=form.save(commit=False), owner=request.user)
        return _to_list(request)
    context = {"own_personas": list(selectors.persona_list_own(user=request.user)), "may_create": True, "form": form}
    return render_page(request, "personas/list.html", "personas/partials/persona_list.html", context, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def persona_edit(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Edit one of the user's own personas (404 for a site persona or another user's).

    Saving a change to a published persona unpublishes it (`services.persona_save_own`);
    a form posted unchanged saves nothing.
    """
    persona = get_owned_or_404(selectors.persona_get_own, user=request.user, slug=slug)
    _allowed(request)
    form = OwnPersonaForm(request.POST or None, instance=persona)
    if request.method == "POST" and form.is_valid():
        if form.has_changed():
            services.persona_save_own(persona=form.save(commit=False), owner=request.user)
        return _to_list(request)
    status = 400 if form.is_bound else 200
    context = {"persona": persona, "form": form}
    return render_page(request, "personas/edit.html", "personas/partials/persona_edit.html", context, status=status)


@login_required
@require_POST
def persona_delete(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Delete one of the user's own personas (404 for a site persona or another user's)."""
    persona = get_owned_or_404(selectors.persona_get_own, user=request.user, slug=slug)
    services.persona_delete_own(persona=persona)
    return _to_list(request)
