#!/bin/sh
# Container entrypoint: pick up a token mounted as a secret, then exec easytorchd,
# so that the daemon itself is PID 1 and gets `docker stop`'s SIGTERM.
# easytorchd reads flags before the environment, so flags given to `docker run`
# (--token-file, --listen, ...) still win over what is set here.
set -eu

secret=/run/secrets/easytorch_token
if [ -z "${EASYTORCH_TOKEN:-}" ] && [ -z "${EASYTORCH_TOKEN_FILE:-}" ] && [ -r "$secret" ]; then
    export EASYTORCH_TOKEN_FILE="$secret"
fi

exec /usr/local/bin/easytorchd "$@"
