# The compose demo's trainer: Python 3 and the stdlib-only client
# (clients/python), running clients/python/examples/sine.py against the daemon.
#   docker build -f docker/trainer.Dockerfile -t easytorch-trainer .   (repository root)
# The client reads EASYTORCH_URL and EASYTORCH_TOKEN from the environment.
ARG DEBIAN_SLIM_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_SLIM_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --user-group --no-create-home --shell /usr/sbin/nologin trainer
# Stdlib only: the package works from PYTHONPATH, no pip needed in the image.
COPY clients/python /opt/easytorch-client
ENV PYTHONPATH=/opt/easytorch-client \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EASYTORCH_URL=http://easytorchd:8080
WORKDIR /opt/easytorch-client
USER trainer:trainer
ENTRYPOINT ["python3", "examples/sine.py"]
