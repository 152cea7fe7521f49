/* error_file.h — a rank's own account of why it failed.
 *
 * torchrun gives every worker TORCHELASTIC_ERROR_FILE, a path of its own,
 * and torch.distributed.elastic.multiprocessing.errors.record writes the
 * exception that ended the worker there as JSON:
 *   {"message": {"message": "<Type>: <text>",
 *                "extraInfo": {"py_callstack": "<traceback>", "timestamp": "<s>"}}}
 * (newer torch may write "message" as a plain string). sagerun gives each
 * rank such a path too (rank_env.h) and, when the rank fails, puts the
 * exception and the line it was raised at into the failure reason
 * (supervisor.h), where the last output lines alone rarely say it.
 */
#ifndef SAGERUN_ERROR_FILE_H
#define SAGERUN_ERROR_FILE_H

#include <stdbool.h>
#include <stddef.h>

/* "<Type>: <text> (File "<path>", line <n>, in <function>)" from the error
 * file at `path`, on one line; false when there is none or it holds no
 * message. */
bool error_file_summary(const char *path, char *out, size_t size);

#endif
