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

#endif
