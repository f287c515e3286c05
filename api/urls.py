"""The OpenAI-compatible API, mounted at /v1/ (namespace "v1")."""

from django.urls import path

from api import conversations, views

app_name = "v1"

urlpatterns = [
    path("models", views.models_list, name="models"),
    path("chat/completions", views.chat_completions, name="chat-completions"),
    # The caller's own history (api/conversations.py): what the terminal client lists, resumes and exports.
    path("conversations", conversations.conversation_list, name="conversation-list"),
    path("conversations/<str:public_id>", conversations.conversation_detail, name="conversation-detail"),
    path("conversations/<str:public_id>/export", conversations.conversation_export, name="conversation-export"),
]
