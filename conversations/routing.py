from django.urls import path

from conversations.consumers import ConversationConsumer

websocket_urlpatterns = [
    # Channels routes ASGI apps with Django's path() (its routing docs); django-stubs types the second
    # argument as a Django view only (typeddjango/django-stubs#3354 proposed an ASGI overload).
    path("ws/conversations/<uuid:public_id>/", ConversationConsumer.as_asgi()),  # type: ignore[arg-type]
]
