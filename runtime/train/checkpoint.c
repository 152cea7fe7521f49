#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fs.h"
#include "strbuf.h"

#define MAGIC "SRCKPT01"
#define NAME_FORMAT "ckpt-%010" PRIu64 ".bin"
#define MAX_CHECKPOINTS 4096

struct header {
    char magic[8];
    uint64_t fingerprint, step, seed, num_params;
    int64_t epoch, shard, offset;
};

static int write_all(int fd, const void *buf, size_t len, EVP_MD_CTX *md)
{
    const char *p = buf;
    EVP_DigestUpdate(md, buf, len);
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len, EVP_MD_CTX *md)
{
    char *p = buf;
    size_t want = len;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    if (md)
        EVP_DigestUpdate(md, buf, want);
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Steps of the checkpoints in `dir`, newest first. */
static size_t list_steps(const char *dir, uint64_t *steps, size_t max)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        uint64_t step;
        char tail;
        if (sscanf(e->d_name, "ckpt-%10" SCNu64 ".bi%c", &step, &tail) == 2 && tail == 'n' &&
            strlen(e->d_name) == 19)
            steps[n++] = step;
    }
    if (d)
        closedir(d);
    for (size_t i = 1; i < n; i++) /* insertion sort, descending */
        for (size_t j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            uint64_t t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    return n;
}

static void prune(const char *dir, int keep)
{
    uint64_t steps[MAX_CHECKPOINTS];
    size_t n = list_steps(dir, steps, MAX_CHECKPOINTS);
    for (size_t i = (size_t)keep; i < n; i++) {
        char path[FS_PATH_BYTES];
        snprintf(path, sizeof path, "%s/" NAME_FORMAT, dir, steps[i]);
        unlink(path);
    }
}

int checkpoint_dir_prepare(const char *dir, const char *origin, struct sr_error *err)
{
    struct sr_error why = {{0}};
    if (fs_mkdirs(dir, &why) != 0) {
        error_setf(err, "checkpoints: the directory %s (%s) cannot be made: %s", dir, origin, why.text);
        return -1;
    }
    char probe[FS_PATH_BYTES];
    snprintf(probe, sizeof probe, "%s/.sagerun-write-test-XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0) {
        error_setf(err, "checkpoints: the directory %s (%s) is not writable: %s", dir, origin, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

int checkpoint_save(const char *dir, const struct checkpoint_state *s, int keep, struct sr_error *err)
{
    char tmp[FS_PATH_BYTES], path[FS_PATH_BYTES];
    snprintf(path, sizeof path, "%s/" NAME_FORMAT, dir, s->step);
    snprintf(tmp, sizeof tmp, "%s/.ckpt-%010" PRIu64 ".tmp.%d", dir, s->step, (int)getpid());
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        error_setf(err, "checkpoint: cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setf(err, "checkpoint: cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    struct header h = {.fingerprint = s->fingerprint, .step = s->step, .seed = s->seed,
                       .num_params = s->num_params, .epoch = s->data.epoch, .shard = s->data.shard,
                       .offset = s->data.offset};
    memcpy(h.magic, MAGIC, 8);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    size_t bytes = s->num_params * sizeof(float);
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) && write_all(fd, &h, sizeof h, md) == 0 &&
             write_all(fd, s->params, bytes, md) == 0 && write_all(fd, s->m, bytes, md) == 0 &&
             write_all(fd, s->v, bytes, md) == 0 && EVP_DigestFinal_ex(md, digest, &digest_len) &&
             write_all(fd, digest, digest_len, md) == 0 && fsync(fd) == 0;
    int saved_errno = errno;
    EVP_MD_CTX_free(md);
    if (close(fd) != 0 || !ok) {
        error_setf(err, "checkpoint: writing %s failed: %s", tmp, strerror(ok ? errno : saved_errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0 || fsync_dir(dir) != 0) {
        error_setf(err, "checkpoint: cannot put %s in place: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    prune(dir, keep);
    return 0;
}

/* 0: loaded; 1: invalid (reason in `why`); -1: a different model (err). */
static int load_one(const char *path, struct checkpoint_state *s, char *why, size_t why_size, struct sr_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_size, "cannot open: %s", strerror(errno));
        return 1;
    }
    struct header h;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    size_t bytes = s->num_params * sizeof(float);
    int rc = 1;
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) || read_all(fd, &h, sizeof h, md) != 0) {
        snprintf(why, why_size, "truncated header");
    } else if (memcmp(h.magic, MAGIC, 8) != 0) {
        snprintf(why, why_size, "not a sagerun checkpoint (bad magic)");
    } else if (h.fingerprint != s->fingerprint || h.num_params != s->num_params) {
        error_setf(err, "checkpoint %s belongs to a different model (%" PRIu64 " parameters, fingerprint %016" PRIx64
                        "; this job's model has %zu, %016" PRIx64 "); move it away or restore the job's model "
                        "hyperparameters", path, h.num_params, h.fingerprint, s->num_params, s->fingerprint);
        rc = -1;
    } else if (read_all(fd, s->params, bytes, md) != 0 || read_all(fd, s->m, bytes, md) != 0 ||
               read_all(fd, s->v, bytes, md) != 0 || !EVP_DigestFinal_ex(md, digest, &digest_len) ||
               read_all(fd, stored, digest_len, NULL) != 0) {
        snprintf(why, why_size, "truncated");
    } else if (memcmp(digest, stored, digest_len) != 0) {
        snprintf(why, why_size, "SHA-256 mismatch (corrupt)");
    } else {
        char extra;
        if (read(fd, &extra, 1) != 0) {
            snprintf(why, why_size, "trailing bytes after the checksum");
        } else {
            s->step = h.step;
            s->seed = h.seed;
            s->data = (struct data_position){h.epoch, h.shard, h.offset};
            rc = 0;
        }
    }
    EVP_MD_CTX_free(md);
    close(fd);
    return rc;
}

int checkpoint_load_latest(const char *dir, struct checkpoint_state *s, char *loaded, size_t loaded_size, FILE *log,
                           struct sr_error *err)
{
    uint64_t steps[MAX_CHECKPOINTS];
    size_t n = list_steps(dir, steps, MAX_CHECKPOINTS);
    for (size_t i = 0; i < n; i++) {
        char path[FS_PATH_BYTES], why[256] = "";
        snprintf(path, sizeof path, "%s/" NAME_FORMAT, dir, steps[i]);
        int rc = load_one(path, s, why, sizeof why, err);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            snprintf(loaded, loaded_size, "%s", path);
            return 1;
        }
        fprintf(log, "sagerun: checkpoint %s is unusable (%s); trying an older one\n", path, why);
    }
    return 0;
}
