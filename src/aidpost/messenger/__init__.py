"""The messenger: help-request queues, chats and messages, WebSocket gateways."""
