/*
 * keys.h - every Redis key and channel name wspush uses, built in one place.
 *
 * All names start with "<prefix>:" (redis.prefix): the prefix, not the
 * Redis database, separates deployments, since pub/sub ignores databases.
 *
 *   <prefix>:<address>        channel an address is published on; with
 *                             history, also the stream key of its history
 *                             (one name, so one Redis Cluster slot)
 *   <prefix>:_hb:<node>       the bridge's own liveness probe channel
 *   <prefix>:inbound          stream of client `send` messages
 *   <prefix>:events           stream of connect / disconnect events
 *   <prefix>:node:<node>      hash describing a live node (with a TTL)
 *   <prefix>:presence:<node>  hash user -> connections on that node
 *   <prefix>:node:*, <prefix>:presence:*  what `wspushctl online` scans
 *
 * Each function writes a NUL-terminated name into buf and returns its
 * length, or -1 if it does not fit (buf is then unspecified).
 */
#ifndef WSP_KEYS_H
#define WSP_KEYS_H

#include <stddef.h>

/* Longest name any of these builds (prefix, node id and address are each
 * bounded by the config and address rules). */
#define KEYS_MAX 512

int keys_channel(char *buf, size_t len, const char *prefix, const char *address,
    size_t address_len);
int keys_hb_channel(
    char *buf, size_t len, const char *prefix, const char *node);
/* "<prefix>:_hb:", the part every bridge's probe channel starts with. */
int keys_hb_prefix(char *buf, size_t len, const char *prefix);
int keys_inbound(char *buf, size_t len, const char *prefix);
int keys_events(char *buf, size_t len, const char *prefix);
int keys_node(char *buf, size_t len, const char *prefix, const char *node);
int keys_presence(char *buf, size_t len, const char *prefix, const char *node);
/* SCAN patterns for every node's hash ("<prefix>:node:*"), glob
 * characters of the prefix escaped. */
int keys_node_pattern(char *buf, size_t len, const char *prefix);
int keys_presence_pattern(char *buf, size_t len, const char *prefix);
/* "<prefix>:*" with the prefix's glob characters escaped: broadcast
 * routing's one PSUBSCRIBE. */
int keys_all_pattern(char *buf, size_t len, const char *prefix);

#endif
