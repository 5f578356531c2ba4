#!/bin/sh
# Kept for the commands that name it: the emulated hosts share one install step.
exec sh "$(dirname "$0")/../../hosts/install-deps.sh" "$@"
