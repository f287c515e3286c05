"""The user's API pages, mounted at /account/api/ (namespace "api")."""

from django.urls import path

from api import pages

app_name = "api"

urlpatterns = [
    path("", pages.api_page, name="page"),
    path("keys/", pages.keys, name="keys"),
    path("keys/<int:pk>/revoke/", pages.key_revoke, name="key-revoke"),
    path("console-key/", pages.console_key_create, name="console-key"),
]
