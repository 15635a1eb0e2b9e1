"""The ASGI application daphne serves: the relay's one WebSocket route.

DJANGO_SETTINGS_MODULE=channels_relay.settings daphne channels_relay.asgi:application
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_relay.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after setup()
from django.urls import path  # noqa: E402

from channels_relay.consumers import RelayConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("relay/<int:pair>/<str:side>", RelayConsumer.as_asgi())])}
)
