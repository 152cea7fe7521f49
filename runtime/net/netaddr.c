#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "transport.h"

int resolve_host(const char *host, double timeout_s, struct in_addr *out, struct sr_error *err)
{
    double deadline = clock_now() + timeout_s, backoff = 0.25;
    bool said = false;
    for (;;) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
        int rc = getaddrinfo(host, NULL, &hints, &res);
        if (rc == 0) {
            *out = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
            freeaddrinfo(res);
            if (said)
                fprintf(stderr, "sagerun: host name %s resolved\n", host);
            return 0;
        }
        bool transient = rc == EAI_AGAIN || rc == EAI_NONAME || rc == EAI_FAIL || rc == EAI_NODATA;
        if (!transient || clock_now() + backoff > deadline) {
            error_setf(err, "host name %s did not resolve%s: %s", host,
                       transient ? " before the deadline (" RESOLVE_TIMEOUT_ENV ")" : "", gai_strerror(rc));
            return -1;
        }
        if (!said)
            fprintf(stderr, "sagerun: host name %s does not resolve yet (%s); retrying for up to %.0f s\n", host,
                    gai_strerror(rc), timeout_s);
        said = true;
        clock_sleep(backoff);
        backoff = backoff * 2 > 10.0 ? 10.0 : backoff * 2;
    }
}

int interface_address(const char *name, struct in_addr *out, struct sr_error *err)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) {
        error_setf(err, "cannot list network interfaces: %s", strerror(errno));
        return -1;
    }
    int rc = -1;
    for (struct ifaddrs *a = list; a; a = a->ifa_next)
        if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET && strcmp(a->ifa_name, name) == 0) {
            *out = ((struct sockaddr_in *)a->ifa_addr)->sin_addr;
            rc = 0;
            break;
        }
    freeifaddrs(list);
    if (rc != 0)
        error_setf(err, "network interface %s (resourceconfig.json network_interface_name) has no IPv4 address here",
                   name);
    return rc;
}
