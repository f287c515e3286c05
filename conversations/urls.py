from django.urls import path

from conversations.views import chat, manage, organize, personas, search

app_name = "conversations"

urlpatterns = [
    path("", chat.conversation_new, name="conversation-new"),
    path("c/", chat.conversation_create, name="conversation-create"),
    path("c/<uuid:public_id>/", chat.conversation_detail, name="conversation-detail"),
    path("c/<uuid:public_id>/messages/", chat.message_page, name="message-page"),
    path("c/<uuid:public_id>/messages/<uuid:message_id>/show/", chat.message_show, name="message-show"),
    path("c/<uuid:public_id>/model/", chat.conversation_model, name="conversation-model"),
    path("c/<uuid:public_id>/persona/", chat.conversation_persona, name="conversation-persona"),
    path("c/<uuid:public_id>/rename/", manage.conversation_rename, name="conversation-rename"),
    path("c/<uuid:public_id>/delete/", manage.conversation_delete, name="conversation-delete"),
    path("c/<uuid:public_id>/archive/", manage.conversation_archive, name="conversation-archive"),
    path("c/<uuid:public_id>/unarchive/", manage.conversation_unarchive, name="conversation-unarchive"),
    path("c/<uuid:public_id>/pin/", organize.conversation_pin, name="conversation-pin"),
    path("c/<uuid:public_id>/folder/", organize.conversation_folder, name="conversation-folder"),
    path("pinned/", organize.pinned_list, name="pinned-list"),
    path("folders/<uuid:public_id>/", organize.folder_detail, name="folder-detail"),
    path("folders/<uuid:public_id>/rename/", organize.folder_rename, name="folder-rename"),
    path("folders/<uuid:public_id>/delete/", organize.folder_delete, name="folder-delete"),
    path("conversations/", manage.conversation_list, name="conversation-list"),
    path("archived/", manage.conversation_archived_list, name="conversation-archived-list"),
    path("search/", search.search, name="search"),
    path("personas/", personas.persona_list, name="persona-list"),
    path("personas/new/", personas.persona_create, name="persona-create"),
    path("personas/<slug:slug>/", personas.persona_edit, name="persona-edit"),
    path("personas/<slug:slug>/delete/", personas.persona_delete, name="persona-delete"),
]
