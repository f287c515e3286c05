from django.urls import path

from attachments import views

app_name = "attachments"

urlpatterns = [
    path("files/", views.attachment_upload, name="attachment-upload"),
    path("files/<uuid:public_id>/", views.attachment_file, name="attachment-file"),
    path("files/<uuid:public_id>/remove/", views.attachment_remove, name="attachment-remove"),
]
