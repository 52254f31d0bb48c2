"""Refuse to start the compose stack with placeholder or weak secrets (run by the `preflight` service first).

Every variable named in SECRETS must be set, must not still hold the `change-me` placeholder of .env.example, and
must be at least MIN_LENGTH characters; the Prefect auth string must be `user:password`. The reason is printed
for each refused variable, never the value.

    python infra/preflight.py          # reads the environment; exit 1 with the reasons, 0 when all is well
"""

from __future__ import annotations

import os
import sys

SECRETS = ("POSTGRES_PASSWORD", "S3_SECRET_KEY", "MLFLOW_ADMIN_PASSWORD", "PREFECT_AUTH_STRING")
MIN_LENGTH = 12


def problems(env: dict[str, str]) -> list[str]:
    found = []
    for name in SECRETS:
        value = env.get(name, "")
        if not value:
            found.append(f"{name} is not set (infra/.env)")
        elif "change-me" in value.lower():
            found.append(
                f"{name} still holds the change-me placeholder of infra/.env.example: set a real secret"
            )
        elif len(value.split(":", 1)[-1]) < MIN_LENGTH:
            found.append(f"{name} is shorter than {MIN_LENGTH} characters")
    auth = env.get("PREFECT_AUTH_STRING", "")
    if auth and ":" not in auth:
        found.append("PREFECT_AUTH_STRING must be user:password")
    return found


def main() -> int:
    found = problems(dict(os.environ))
    for line in found:
        print(f"preflight: {line}", file=sys.stderr)
    if found:
        print(
            "preflight: refusing to start the stack; fix infra/.env and run compose up again", file=sys.stderr
        )
        return 1
    print("preflight: secrets set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
