from aidpost.core.migrate import run_env
from aidpost.participant.models import metadata

run_env(metadata)
