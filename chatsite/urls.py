from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from accounts.views import LoginView, invitation_follow
from chatsite.views import account_page

urlpatterns = [
    path("admin/", admin.site.urls),
    # gettext() and friends for static/js (Django docs, "Internationalization: in JavaScript code").
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # Before allauth's own: the same page, with a lockout answered 429.
    path("accounts/login/", LoginView.as_view(), name="account_login"),
    path("accounts/invite/<str:code>/", invitation_follow, name="account-invitation"),
    path("accounts/", include("allauth.urls")),
    path("account/", account_page, name="account"),
    path("", include("transfer.urls")),
    path("", include("sharing.urls")),
    path("", include("usage.urls")),
    path("", include("conversations.urls")),
]
