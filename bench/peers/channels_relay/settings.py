"""Django settings of the Channels peer: only what a WebSocket relay needs.

The channel layer is channels_redis's default ``RedisChannelLayer`` on ``RELAY_REDIS_URL``
(a Redis database of its own, default 5) under a prefix of its own. Its ``capacity`` (messages
waiting per channel before ``group_send`` drops them) is raised from 100 to 10,000 so that a
short burst is not counted as loss against the peer; ``expiry`` stays at its default of 60 s.
"""

import os

SECRET_KEY = "aidpost-bench-channels-relay-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
ASGI_APPLICATION = "channels_relay.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("RELAY_REDIS_URL", "redis://127.0.0.1:6379/5")],
            "prefix": "aidpost-relaybench-channels:",
            "capacity": 10_000,
            "expiry": 60,
        },
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
