"""The OpenAI-compatible API, mounted at /v1/ (namespace "v1")."""

from django.urls import path

from api import views

app_name = "v1"

urlpatterns = [
    path("models", views.models_list, name="models"),
    path("chat/completions", views.chat_completions, name="chat-completions"),
]
