/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * mapwatch-bw internals: one RC connection (bw_verbs.c), the three
 * registration strategies under test (bw_cache.c), the driver (mapwatch-bw.c).
 */
#ifndef MAPWATCH_BW_H
#define MAPWATCH_BW_H

#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>

#include "mapwatch.h"

#define BW_MAX_SIZES 24

/*
 * The strategies.  The first BW_NDEFAULT_CACHE run unless --cache says
 * otherwise; the On-Demand Paging ones (no cache needed: the NIC follows
 * the mapping) only when asked for, on a device and kernel that have ODP.
 */
enum bw_cache_mode { BW_CACHE_NONE, BW_CACHE_UNSAFE, BW_CACHE_MAPWATCH,
		     BW_CACHE_ODP, BW_CACHE_ODP_PREFETCH, BW_NCACHE };
#define BW_NDEFAULT_CACHE 3
enum bw_workload { BW_STATIC, BW_CHURN, BW_NWORKLOAD };
enum bw_backend { BW_BACKEND_AUTO, BW_BACKEND_KERNEL, BW_BACKEND_UFFD };
enum bw_op { BW_OP_WRITE, BW_OP_SEND };

extern const char *const bw_cache_names[BW_NCACHE];
extern const char *const bw_workload_names[BW_NWORKLOAD];
extern const char *const bw_backend_names[3];

/* Prints "mapwatch-bw: <message>" (plus a hint line when hint != NULL). */
void bw_err(const char *hint, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Set in a loopback child: its parent reports why the connection ended. */
extern int bw_quiet_eof;

/* --- the connection ---------------------------------------------------- */

struct bw_conn {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_comp_channel *chan;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *ctrl_mr;		/* small static control area */
	void *ctrl;
	char devname[64];
	int software;			/* rxe/siw: a CPU plays the NIC */
	int oob;			/* socket to the peer: setup and results */
	int timeout_ms;			/* one wait for a completion */
};

/* Wire format of a clear-to-send: the receiver's buffer for one message. */
struct bw_cts {
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;
	uint32_t seq;
	uint32_t pad;
};

#define BW_CTRL_SLOTS 4
#define BW_CTRL_SLOT 64

/* 0 when the device (NULL: any) exists; else prints how to get one. */
int bw_check_device(const char *dev);
int bw_conn_open(struct bw_conn *c, const char *dev, int ib_port, int gid_index);
void bw_conn_close(struct bw_conn *c);

int bw_post_recv(struct bw_conn *c, uint64_t wr_id, void *buf, uint32_t len,
		 uint32_t lkey);
int bw_post_send(struct bw_conn *c, uint64_t wr_id, enum ibv_wr_opcode op,
		 void *buf, uint32_t len, uint32_t lkey, uint64_t raddr,
		 uint32_t rkey, uint32_t imm);
/* Waits for the next completion; 0, or -1 after printing why. */
int bw_wait(struct bw_conn *c, struct ibv_wc *wc);

int bw_oob_send(int fd, const void *buf, size_t len);
int bw_oob_recv(int fd, void *buf, size_t len);

/* --- registration strategies ------------------------------------------ */

struct bw_stats {
	uint64_t registrations;
	uint64_t deregistrations;
	uint64_t hits;
	uint64_t invalidations;
	/* of which, by why (MAPWATCH_CHANGE_*: mapwatch_cache_stats) */
	uint64_t by_reason[MAPWATCH_CHANGE_REASON_SLOTS];
	uint64_t pages_kept;
};

struct bw_cache;

struct bw_reg {
	uint32_t lkey;
	uint32_t rkey;
	void *priv;
};

/* NULL with the reason printed (e.g. the module is not loaded). */
struct bw_cache *bw_cache_create(enum bw_cache_mode mode,
				 enum bw_backend backend, struct ibv_pd *pd,
				 char *why, size_t whylen);
int bw_cache_get(struct bw_cache *bc, void *addr, size_t len,
		 struct bw_reg *reg);
void bw_cache_put(struct bw_cache *bc, struct bw_reg *reg);
void bw_cache_stats(struct bw_cache *bc, struct bw_stats *st);
/* Name of the monitor backend in use ("-" when the mode has none). */
const char *bw_cache_backend(struct bw_cache *bc);
void bw_cache_destroy(struct bw_cache *bc);

#endif
