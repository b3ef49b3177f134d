#!/bin/sh
# Run the spec's distributed example end to end, with Redis or RabbitMQ + a keeper and with the embedded default.
set -e
cd "$(dirname "$0")"
PY=${PYTHON:-python}
"$PY" run_example.py --mode redis --tasks "${N:-4}"
"$PY" run_example.py --mode rabbitmq --tasks "${N:-4}"
"$PY" run_example.py --mode embedded --tasks "${N:-4}"
