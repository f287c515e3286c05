from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from accounts.views import LoginView, language_set
from chatsite.views import account_page, custom_instructions

urlpatterns = [
    path("admin/", admin.site.urls),
    # gettext() and friends for static/js (Django docs, "Internationalization: in JavaScript code").
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # Before allauth's own: the same page, with a lockout answered 429.
    path("accounts/login/", LoginView.as_view(), name="account_login"),
    path("accounts/", include("allauth.urls")),
    path("account/", account_page, name="account"),
    path("", include("bots.urls")),
    path("account/language/", language_set, name="language-set"),
    path("account/instructions/", custom_instructions, name="custom-instructions"),
    path("", include("attachments.urls")),
    path("", include("transfer.urls")),
    path("", include("conversations.urls")),
]
