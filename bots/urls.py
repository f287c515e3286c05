from django.urls import path

from bots import views

app_name = "bots"

urlpatterns = [
    path("bots/feishu/<uuid:public_id>/", views.feishu_callback, name="feishu-callback"),
    path("bots/wechat/<uuid:public_id>/", views.wechat_callback, name="wechat-callback"),
    path("account/im/", views.account_links, name="account-links"),
]
