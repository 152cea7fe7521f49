#include "hang.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "clock.h"
#include "error.h"
#include "fs.h"
#include "strbuf.h"

#define TOOL_TIMEOUT_S 20.0
#define STACK_BYTES (256 * 1024) /* of one process's stacks */
#define MAX_PIDS 64              /* looked at per rank */

/* The process group and name of `pid` from /proc/PID/stat. */
static bool process_info(pid_t pid, pid_t *group, char *comm, size_t size)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *open = strchr(line, '('), *close = strrchr(line, ')');
    int ppid, pgrp;
    char state;
    if (!ok || !open || !close || sscanf(close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
        return false;
    snprintf(comm, size, "%.*s", (int)(close - open - 1), open + 1);
    *group = pgrp;
    return true;
}

/* The processes of process group `group`, the leader first. */
static int group_members(pid_t group, pid_t *pids, int max)
{
    int n = 0;
    pids[n++] = group;
    DIR *proc = opendir("/proc");
    struct dirent *d;
    while (proc && n < max && (d = readdir(proc))) {
        pid_t pid = (pid_t)atoi(d->d_name), g;
        char comm[64];
        if (pid > 0 && pid != group && process_info(pid, &g, comm, sizeof comm) && g == group)
            pids[n++] = pid;
    }
    if (proc)
        closedir(proc);
    return n;
}

/* Each thread's kernel view, for when no debugger is there. */
static void proc_stacks(pid_t pid, struct strbuf *out)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(dir);
    struct dirent *t;
    while (tasks && (t = readdir(tasks))) {
        if (t->d_name[0] == '.')
            continue;
        strbuf_printf(out, "thread %s:\n", t->d_name);
        static const char *const files[] = {"wchan", "syscall", "stack"};
        for (int i = 0; i < 3; i++) {
            char path[128], text[4096] = "";
            snprintf(path, sizeof path, "%s/%s/%s", dir, t->d_name, files[i]);
            FILE *f = fopen(path, "r");
            size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
            text[n] = '\0';
            if (f)
                fclose(f);
            strbuf_printf(out, "  %s: %s%s", files[i], n ? text : "(unreadable)", n && text[n - 1] == '\n' ? "" : "\n");
        }
    }
    if (tasks)
        closedir(tasks);
}

/* One process's stacks into `out`; returns the tool used. */
static const char *stacks_of(pid_t pid, const char *comm, struct strbuf *out)
{
    char pid_text[16];
    snprintf(pid_text, sizeof pid_text, "%d", (int)pid);
    if (strncmp(comm, "python", 6) == 0 && fs_on_path("py-spy")) {
        char *argv[] = {"py-spy", "dump", "--pid", pid_text, NULL};
        if (capture_run(argv, clock_now() + TOOL_TIMEOUT_S, STACK_BYTES, out) == 0)
            return "py-spy";
        strbuf_puts(out, "\n");
    }
    if (fs_on_path("gdb")) {
        char *argv[] = {"gdb", "-p", pid_text, "-batch", "-nx", "-ex", "set pagination off", "-ex",
                        "thread apply all bt", NULL};
        size_t before = out->len;
        int status = capture_run(argv, clock_now() + TOOL_TIMEOUT_S, STACK_BYTES, out);
        if (status >= 0 && strstr(out->data + before, "\n#0 "))
            return "gdb";
        strbuf_puts(out, "\n");
    }
    proc_stacks(pid, out);
    return "/proc";
}

/* The function of a gdb frame line "#N  0x... in f (...) at ..." or "#N  f (...)". */
static bool gdb_function(const char *line, char *out, size_t size)
{
    const char *p = line + 1 + strspn(line + 1, "0123456789");
    p += strspn(p, " ");
    const char *in = strstr(p, " in ");
    if (strncmp(p, "0x", 2) == 0 && in)
        p = in + 4;
    size_t len = strcspn(p, " (\n");
    if (len == 0)
        return false;
    snprintf(out, size, "%.*s", (int)len, p);
    return true;
}

/* Up to three innermost frames of the main thread, "f0 <- f1 <- f2". */
static void innermost(const char *tool, pid_t pid, const char *text, char *out, size_t size)
{
    out[0] = '\0';
    const char *from = text;
    char marker[64];
    if (strcmp(tool, "gdb") == 0) { /* the thread whose LWP is the process */
        snprintf(marker, sizeof marker, "(LWP %d)", (int)pid);
        const char *t = strstr(text, marker);
        from = t ? t : text;
    } else if (strcmp(tool, "py-spy") == 0) { /* past the header, which quotes the command line */
        const char *t = strstr(text, "\"MainThread\""), *first = strstr(text, "\nThread ");
        from = t ? t : first ? first : text;
    }
    size_t used = 0;
    int frames = 0;
    for (const char *line = from; line && *line && frames < 3; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        char frame[256] = "";
        if (strcmp(tool, "gdb") == 0) {
            if (line[0] != '#' || !gdb_function(line, frame, sizeof frame))
                continue;
        } else if (strcmp(tool, "py-spy") == 0) {
            if (strncmp(line, "    ", 4) != 0 || line[4] == ' ') /* deeper lines are source text */
                continue;
            snprintf(frame, sizeof frame, "%.*s", (int)strcspn(line + 4, "\n"), line + 4);
        } else {
            if (strncmp(line, "  wchan: ", 9) != 0)
                continue;
            snprintf(frame, sizeof frame, "%.*s (kernel)", (int)strcspn(line + 9, "\n"), line + 9);
        }
        used += (size_t)snprintf(out + used, used < size ? size - used : 0, "%s%s", frames ? " <- " : "", frame);
        frames++;
        if (strcmp(tool, "/proc") == 0)
            break;
    }
    if (!frames)
        snprintf(out, size, "(no frames)");
}

void hang_report(const char *why, const char *host, const char *dir, const struct hang_rank *ranks, int count,
                 char *summary, size_t size)
{
    struct strbuf all, line;
    strbuf_init(&all);
    strbuf_init(&line);
    strbuf_printf(&all, "%s\nhost %s, %d ranks\n", why, host, count);
    for (int r = 0; r < count; r++) {
        pid_t pids[MAX_PIDS];
        int n = group_members(ranks[r].group, pids, MAX_PIDS);
        for (int k = 0; k < n; k++) {
            char comm[64] = "?";
            pid_t group;
            if (!process_info(pids[k], &group, comm, sizeof comm))
                continue;
            struct strbuf stacks;
            strbuf_init(&stacks);
            const char *tool = stacks_of(pids[k], comm, &stacks);
            strbuf_printf(&all, "\n=== rank %d: pid %d (%s), by %s\n%s\n", ranks[r].rank, (int)pids[k], comm, tool,
                          stacks.data);
            if (k == 0) {
                char frames[600];
                innermost(tool, pids[k], stacks.data, frames, sizeof frames);
                strbuf_printf(&line, "%srank %d in %s", r ? "; " : "", ranks[r].rank, frames);
            }
            strbuf_free(&stacks);
        }
    }
    char path[FS_PATH_BYTES];
    struct sr_error err = {{0}};
    snprintf(path, sizeof path, "%s/hang-%s.txt", dir, host);
    fputs(all.data, stderr);
    if (fs_mkdirs(dir, &err) != 0 || fs_write_text(path, all.data, &err) != 0)
        fprintf(stderr, "sagerun: cannot keep the stacks: %s\n", err.text);
    snprintf(summary, size, "%s; on %s: %s (see output/data/hang-%s.txt)", why, host, line.data, host);
    strbuf_free(&all);
    strbuf_free(&line);
}
