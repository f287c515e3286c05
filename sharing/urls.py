from django.urls import path

from sharing import views

app_name = "sharing"

urlpatterns = [
    path("c/<uuid:public_id>/share/", views.share_manage, name="share-manage"),
    path("s/<str:token>/", views.shared_detail, name="shared-detail"),
    path("s/<str:token>/continue/", views.shared_continue, name="shared-continue"),
]
