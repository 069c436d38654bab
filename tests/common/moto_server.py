"""moto_server, with one fix that makes it serve what AWS serves.

moto 5.2's UpdateSecretVersionStage moves the AWSCURRENT label but keeps
serving the old version to GetSecretValue and BatchGetSecretValue without a
version, where AWS serves the version labelled AWSCURRENT: the last step of
every rotation would be invisible. The fix keeps moto's default version on
the version that holds AWSCURRENT.
"""

import sys

from moto.secretsmanager.models import SecretsManagerBackend
from moto.server import main

_update = SecretsManagerBackend.update_secret_version_stage


def update_secret_version_stage(self, secret_id, version_stage, remove_from_version_id, move_to_version_id):
    arn, name = _update(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
    if version_stage == "AWSCURRENT" and move_to_version_id:
        self.secrets[name].set_default_version_id(move_to_version_id)
    return arn, name


SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage

if __name__ == "__main__":
    sys.exit(main())
