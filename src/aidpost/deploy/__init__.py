"""What a deployment needs from aidpost itself: its generated configuration and edge config."""
