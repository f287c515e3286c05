"""allauth adapters: who may sign up (the admin's SiteSettings), approval of new accounts, first-account promotion.

allauth asks `is_open_for_signup` before showing and before accepting a
sign-up form (and, through the social adapter, before making an account
for a first sign-in with an identity provider); `clean_email` vets every
email address a form accepts; `save_user` makes the account.
"""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from accounts import invitations
from accounts.models import SiteSettings
from accounts.selectors import site_settings
from accounts.services import user_promote_if_first

Mode = SiteSettings.SignupMode


def email_domain_allowed(email: str, domains: list[str]) -> bool:
    """Return whether `email`'s domain (after the last "@", case-insensitive) is one of `domains` exactly."""
    return "@" in email and email.rsplit("@", 1)[1].lower() in domains


def signup_open(request, *, email: str | None = None) -> bool:
    """Return whether `request` may make a new account now, under the admin's sign-up mode.

    `email` (a social sign-up's address, known before any form) is checked
    against the allowed domains in domain mode; a form's address is checked
    by `AccountAdapter.clean_email` instead.
    """
    config = site_settings()
    if config.signup_mode == Mode.OPEN:
        return True
    if config.signup_mode == Mode.INVITATION:
        return invitations.invitation_from_session(request) is not None
    if config.signup_mode == Mode.DOMAINS:
        return email is None or email_domain_allowed(email, config.allowed_domains)
    return False


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up as the admin set it (SiteSettings); the first account of a fresh site becomes its admin."""

    def is_open_for_signup(self, request):
        return signup_open(request)

    def clean_email(self, email):
        email = super().clean_email(email)
        config = site_settings()
        if config.signup_mode == Mode.DOMAINS:
            domains = config.allowed_domains
            if not email_domain_allowed(email or "", domains):
                raise ValidationError(
                    _("Sign-up is limited to email addresses at %(domains)s.") % {"domains": ", ".join(domains)},
                    code="email_domain",
                )
        return email

    def save_user(self, request, user, form, commit=True):
        return _save_new_user(request, user, lambda: super(AccountAdapter, self).save_user(request, user, form, commit))


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Sign-in with an identity provider; a first sign-in makes an account only where sign-up is open."""

    def is_open_for_signup(self, request, sociallogin):
        return signup_open(request, email=(sociallogin.user.email or "") if sociallogin.user else "")

    def save_user(self, request, sociallogin, form=None):
        return _save_new_user(
            request,
            sociallogin.user,
            lambda: super(SocialAccountAdapter, self).save_user(request, sociallogin, form),
        )


def _save_new_user(request, user, save):
    """Take a use of the session's invitation (in invitation mode), hold the account for approval, save it."""
    config = site_settings()
    with transaction.atomic():
        if config.signup_mode == Mode.INVITATION and not invitations.invitation_use(request=request):
            messages.error(request, _("That invitation link has expired or has been used up."))
            raise ImmediateHttpResponse(redirect("account_signup"))
        first = not type(user)._default_manager.exists()
        if config.signup_requires_approval and not first:
            user.is_active = False
        saved = save()
        if saved.pk:  # Saved (commit=True): allauth's own sign-up always commits.
            user_promote_if_first(user=saved)
    return saved
