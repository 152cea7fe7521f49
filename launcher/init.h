/* init.h — sagerun as a container's first process.
 *
 * SageMaker (and `docker run`) starts the image's entrypoint as PID 1 of the
 * container, and PID 1 has two duties no other process has: every orphan in
 * the container becomes its child, so it must reap them or they stay
 * zombies for the whole job (a shell's background jobs, a data loader's
 * workers after their parent died); and the kernel gives it no default
 * signal actions, so a SIGTERM it has not yet asked for is ignored and
 * `docker stop` waits out its timeout, then SIGKILLs.
 *
 * init_split() meets both the way tini does, without changing anything
 * below it. The process forks: the child returns and is sagerun as usual
 * (its ranks are its own children, which the supervisor reaps by pid, so an
 * orphan's exit can never be mistaken for a rank's), while the parent stays
 * behind as the init: it forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1
 * and SIGUSR2 to the child, reaps every process that comes to it, and when
 * the child ends exits with the child's status (128 + the signal when it
 * was killed). When sagerun is not PID 1 (under `docker run --init`, a
 * wrapper script, a test) the parent makes itself a child subreaper, so the
 * job's orphans come to it all the same. The child dies with the init.
 */
#ifndef SAGERUN_INIT_H
#define SAGERUN_INIT_H

/* Returns in the child; the init never returns. If the fork itself fails,
 * says so and returns in the one process, which goes on without an init. */
void init_split(void);

#endif
