/* sm_env.h — the SM_* environment a rank or user script gets.
 *
 * Reproduces sagemaker-training's Environment.to_env_vars() (names, values,
 * formats: strings raw, everything else Python-compact JSON with sorted keys),
 * computed from the same inputs: the config files, these process environment
 * variables the toolkit reads (SAGEMAKER_PROGRAM, SAGEMAKER_TRAINING_MODULE,
 * TRAINING_JOB_NAME, SM_HP_MP_PARAMETERS, PATH for smddprun), the CPU count
 * and the GPU count. Adds what newer SageMaker drivers set: SM_HOST_COUNT,
 * SM_CURRENT_HOST_RANK, SM_MASTER_ADDR, SM_MASTER_PORT, SM_INPUT_DATA_DIR,
 * SM_OUTPUT_FAILURE. tests/parity checks this against the toolkit itself.
 */
#ifndef SAGERUN_SM_ENV_H
#define SAGERUN_SM_ENV_H

#include <jansson.h>

#include "contract.h"
#include "plan.h"

/* Returns a new JSON object mapping variable name -> string value. */
json_t *sm_env_build(const struct contract *c, const struct plan *p);

/* The toolkit's to_cmd_args() of the user hyperparameters (every decoded
 * hyperparameter but the sagemaker_* and toolkit ones), as SM_USER_ARGS
 * holds them: ["--lr", "0.1", "-b", "8"]. */
json_t *sm_env_user_args(const json_t *decoded_hyperparameters);

#endif
