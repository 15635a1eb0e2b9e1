from aidpost.auth.models import metadata
from aidpost.core.migrate import run_env

run_env(metadata)
