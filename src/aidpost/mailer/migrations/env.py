from aidpost.core.migrate import run_env
from aidpost.mailer.models import metadata

run_env(metadata)
