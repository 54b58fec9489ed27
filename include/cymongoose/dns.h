/*
 * cymongoose: asynchronous host name resolution (c-ares underneath).
 *
 * Each manager has its own resolver, created at the first lookup.  Its name
 * servers come from, in this order: cm_mgr_set_dns(), the environment
 * variable CM_DNS_SERVER, /etc/resolv.conf.  When a server list is given the
 * resolver never sends a query anywhere else.  /etc/hosts is consulted before
 * any server ("localhost" never needs one); the environment variable
 * CARES_HOSTS names another hosts file.  Included by cymongoose.h.
 */
#ifndef CYMONGOOSE_DNS_H
#define CYMONGOOSE_DNS_H

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

struct cm_conn;
struct cm_mgr;

/* Default limit on one lookup, all retries included. */
#define CM_DNS_TIMEOUT_MS 5000
/* Longest server list accepted by cm_mgr_set_dns(). */
#define CM_DNS_SERVERS_MAX 1024

/*
 * Sets mgr's name servers: a comma-separated list of "udp://ip:port",
 * "ip:port" or "ip" (port 53), IPv6 in brackets: "udp://[::1]:5353".
 * The string is copied.  NULL or "" goes back to the default (CM_DNS_SERVER,
 * then /etc/resolv.conf) for a resolver that is not created yet.
 * Returns 0, or CM_EINVAL for a malformed list (nothing changes), or
 * CM_ENOMEM.
 */
int cm_mgr_set_dns(struct cm_mgr *mgr, const char *servers);

/*
 * Sets how long one lookup may take in total before it fails with a
 * "timed out" ERROR (default CM_DNS_TIMEOUT_MS; 0 restores the default).
 * Applies to lookups started afterwards.
 */
void cm_mgr_set_dns_timeout(struct cm_mgr *mgr, unsigned timeout_ms);

/*
 * Looks up the host of url (IPv4 preferred, IPv6 when the name has only
 * AAAA records) without blocking.  On success c->rem gets the address and
 * the url's port (cm_url_port()), then c receives CM_EV_RESOLVE; if c was
 * made by cm_connect() and has no socket yet, the connect starts next.  On
 * failure (unknown name, server failure, no answer, timeout) c receives
 * CM_EV_ERROR with a message naming the host and the reason, and closes.
 * Events are always delivered from cm_mgr_poll(), never inside this call.
 * A lookup already in progress on c is cancelled first.
 * Returns 0, or, with nothing scheduled: CM_EINVAL when url has no host,
 * CM_ECLOSED when c is closing, CM_ENOMEM.
 */
int cm_resolve(struct cm_conn *c, const char *url);

/*
 * Forgets c's lookup in progress, if any: no RESOLVE or ERROR comes from it
 * and c stays open.  Safe to call at any time.  Closing a connection that is
 * resolving cancels its lookup the same way.
 */
void cm_resolve_cancel(struct cm_conn *c);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
