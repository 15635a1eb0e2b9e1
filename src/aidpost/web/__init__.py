"""The web UIs: the organizer console (``/console``) and the participant app (``/app``)."""
