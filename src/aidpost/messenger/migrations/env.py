from aidpost.core.migrate import run_env
from aidpost.messenger.models import metadata

run_env(metadata)
