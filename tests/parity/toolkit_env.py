"""Prints sagemaker-training's SM_* environment for the ML root in $SAGEMAKER_BASE_DIR as JSON.

This is the reference side of the parity test: the toolkit itself, unmodified,
computing Environment().to_env_vars() from the same files sagerun reads.
"""
import json
import logging
import sys

logging.disable(logging.CRITICAL)  # the toolkit logs to stderr on import

from sagemaker_training import environment  # noqa: E402  (reads SAGEMAKER_BASE_DIR on import)

json.dump(environment.Environment().to_env_vars(), sys.stdout, sort_keys=True)
