"""The Django Channels peer of ``bench/relay.py``: a relay as a Channels user would write it.

A minimal Django project (no database, no sessions, no auth middleware) whose one
WebSocket route, ``/relay/<pair>/<side>``, joins the socket to the group of its pair and side
and sends every text frame it receives to the other side's group through channels_redis's
``RedisChannelLayer`` (lists and sorted sets on Redis, not pub/sub). ``bench/relay.py`` runs two
daphne processes of it on one Redis database (``RELAY_REDIS_URL``).
"""
