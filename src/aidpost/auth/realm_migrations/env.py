from aidpost.auth.models import realm_metadata
from aidpost.core.migrate import run_env

run_env(realm_metadata)
