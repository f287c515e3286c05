from allauth.account.adapter import DefaultAccountAdapter

from accounts.services import user_promote_if_first


class AccountAdapter(DefaultAccountAdapter):
    """allauth adapter: the first account of a fresh site becomes its admin."""

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_promote_if_first(user=user)
        return user
