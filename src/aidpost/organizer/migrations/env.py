from aidpost.core.migrate import run_env
from aidpost.organizer.models import metadata

run_env(metadata)
