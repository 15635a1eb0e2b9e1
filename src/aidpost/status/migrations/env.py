from aidpost.core.migrate import run_env
from aidpost.status.models import metadata

run_env(metadata)
