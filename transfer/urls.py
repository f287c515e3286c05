from django.urls import path

from transfer import views

app_name = "transfer"

urlpatterns = [
    path("c/<uuid:public_id>/export/<str:fmt>/", views.conversation_export, name="conversation-export"),
    path("export/all.zip", views.export_all, name="export-all"),
    path("data/", views.data_page, name="data"),
    path("data/import/", views.import_create, name="import-create"),
    path("data/imports/<uuid:public_id>/", views.import_detail, name="import-detail"),
]
