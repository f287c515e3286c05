from django.urls import path

from conversations.views import chat

app_name = "conversations"

urlpatterns = [
    path("", chat.conversation_new, name="conversation-new"),
    path("c/", chat.conversation_create, name="conversation-create"),
    path("c/<uuid:public_id>/", chat.conversation_detail, name="conversation-detail"),
]
