/* netaddr.h — the addresses a job's hosts use.
 *
 * SageMaker's DNS for algo-N can lag behind the container's start, so a host
 * name is resolved with retries and exponential backoff until a deadline
 * (sagemaker-training waits up to 15 minutes). A host listens on the IPv4
 * address of the job's network interface (resourceconfig.json's
 * network_interface_name).
 */
#ifndef SAGERUN_NETADDR_H
#define SAGERUN_NETADDR_H

#include <netinet/in.h>

#include "error.h"

#define RESOLVE_TIMEOUT_ENV "SAGERUN_RESOLVE_TIMEOUT"
#define DEFAULT_RESOLVE_TIMEOUT_S 900

/* Resolves `host` to an IPv4 address, retrying until `timeout_s` passed.
 * Says once on stderr that it is waiting, so a slow start is visible. */
int resolve_host(const char *host, double timeout_s, struct in_addr *out, struct sr_error *err);

/* The first IPv4 address of interface `name`; -1 (err set) if none. */
int interface_address(const char *name, struct in_addr *out, struct sr_error *err);

#endif
