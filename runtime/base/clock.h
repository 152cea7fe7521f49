/* clock.h — the one clock sagerun measures time and deadlines with.
 *
 * CLOCK_MONOTONIC seconds as a double: never jumps with the wall clock (NTP,
 * a container's clock being set), so a deadline computed as now + timeout
 * always means that many seconds. Every timeout, backoff and timing in
 * sagerun uses it, so times taken in different modules compare.
 */
#ifndef SAGERUN_CLOCK_H
#define SAGERUN_CLOCK_H

double clock_now(void);

/* Sleeps `seconds`, resuming after signals (a pause between retries). */
void clock_sleep(double seconds);

/* CPU seconds, user and system, for benchmarks' cost per byte: this
 * process's (all threads), this thread's, and the whole machine's busy
 * time from /proc/stat (user, nice, system, irq, softirq: what a kernel
 * thread does for the network counts too; idle, iowait and steal do not),
 * -1 if /proc/stat cannot be read. */
double clock_process_cpu(void);
double clock_thread_cpu(void);
double clock_machine_busy(void);

#endif
