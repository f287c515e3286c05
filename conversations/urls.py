from django.urls import path

from conversations import views

app_name = "conversations"

urlpatterns = [
    path("", views.conversation_new, name="conversation-new"),
    path("c/", views.conversation_create, name="conversation-create"),
    path("c/<uuid:public_id>/", views.conversation_detail, name="conversation-detail"),
]
