"""The participant component: participant profiles (and, next, events and help requests)."""
