#!/bin/sh
# A learner's server in the Zero to JupyterHub image: their own copy of the course in their home (the
# pod's persistent volume) on first start, the shared installation in /opt/seckill, then the command
# (jupyterhub-singleuser under the hub; any other command, e.g. `seckill up`, in a test).
set -e
COURSE="$HOME/seckill"
if [ ! -d "$COURSE/notebooks" ]; then
    mkdir -p "$COURSE"
    tar -C /opt/seckill --exclude=./.venv --exclude=./.git -cf - . | tar -C "$COURSE" -xf -
fi
cd "$COURSE"
export SECKILL_LABS_DIR="$COURSE/labs" SECKILL_RESULTS_DIR="$COURSE/results"
exec "$@"
