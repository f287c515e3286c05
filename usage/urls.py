from django.urls import path

from usage import views

app_name = "usage"

urlpatterns = [
    path("usage/", views.usage_page, name="usage"),
    path("usage/site/", views.usage_site, name="usage-site"),
]
