/*
 * scripts/bench/tcmu-ring-ceiling.c — a TCMU handler that does no work, as a yardstick.
 *
 * Serves one TCMU device (a LIO `user` backstore) and does no work for it: READ and WRITE
 * complete GOOD at once without touching their data (reads return whatever the data area
 * holds), and only the few commands Linux's sd needs to attach a disk are answered. What is
 * left is the kernel's share of every TCMU command — tcm_loop, LIO, the ring, the data-area
 * copies, the wake-ups — plus one wait, one pass over the ring and one completion write per
 * batch, the least any handler can do. tests/e2e/bench-guest.sh runs it as system "ceiling":
 * within the noise, no handler that sleeps while its ring is empty gets more IOPS out of the
 * same kernel and VM, so it shows how much of a gap to LIO's fileio or to tcmu-runner a
 * handler can close at all.
 *
 * Never for data: it loses every write. Written from docs/tcmu.md (§3 the wait
 * and kick, §4 the mailbox, §5 ring entries); completes in ring order, one kick per batch.
 *
 * usage: tcmu-ring-ceiling /dev/uioN MAP_SIZE CAPACITY_BYTES BLOCK_SIZE
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

/* docs/tcmu.md §4 (mailbox) and §5, §8 (entries), x86_64 offsets. */
enum { MB_CMDR_OFF = 4, MB_CMDR_SIZE = 8, MB_CMD_HEAD = 12, MB_CMD_TAIL = 64 };
enum { OP_PAD = 0, OP_CMD = 1, OP_TMR = 2, OP_MASK = 7 };
enum { E_UFLAGS = 7, E_IOV_CNT = 8, E_CDB_OFF = 24, E_IOV = 48 };
enum { R_STATUS = 8, R_READ_LEN = 12, R_SENSE = 16 };
enum { UFLAG_READ_LEN = 0x2 };
enum { GOOD = 0x00, CHECK_CONDITION = 0x02 };
enum { ILLEGAL_REQUEST = 0x5 };

static uint8_t *map;
static uint64_t capacity, block_size;

static uint32_t rd32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void be64(uint8_t *p, uint64_t v) { be32(p, v >> 32); be32(p + 4, (uint32_t)v); }

/* SAM: the CDB's length follows from its group code (bits 7-5 of the operation code). */
static int cdb_length(uint8_t op)
{
    switch (op >> 5) {
    case 0: return 6;
    case 1: case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 0;
    }
}

/* Copies a reply into the command's Data-In iovecs; returns how many bytes went out. */
static uint32_t put_data_in(const struct iovec *iov, int n, const uint8_t *src, uint32_t len)
{
    uint32_t done = 0;
    for (int i = 0; i < n && done < len; i++) {
        uint32_t k = iov[i].iov_len < len - done ? (uint32_t)iov[i].iov_len : len - done;
        memcpy(map + (uintptr_t)iov[i].iov_base, src + done, k);
        done += k;
    }
    return done;
}

/* One command: returns the SCSI status and fills *reply / *reply_len for commands with Data-In. */
static uint8_t execute(const uint8_t *cdb, uint8_t *reply, uint32_t *reply_len, uint8_t *asc)
{
    uint64_t blocks = capacity / block_size;
    *reply_len = 0;
    *asc = 0x20; /* INVALID COMMAND OPERATION CODE */
    switch (cdb[0]) {
    case 0x08: case 0x28: case 0xa8: case 0x88:             /* READ (6/10/12/16) */
    case 0x0a: case 0x2a: case 0xaa: case 0x8a:             /* WRITE (6/10/12/16) */
    case 0x00:                                              /* TEST UNIT READY */
    case 0x35: case 0x91:                                   /* SYNCHRONIZE CACHE (10/16) */
    case 0x1b: case 0x1e:                                   /* START STOP UNIT, PREVENT ALLOW */
        return GOOD;
    case 0x12:                                              /* INQUIRY */
        if (cdb[1] & 1) {
            if (cdb[2] != 0x00) { *asc = 0x24; return CHECK_CONDITION; }
            reply[3] = 1;                                   /* supported pages: 00h only */
            *reply_len = 5;
            return GOOD;
        }
        reply[2] = 0x06;                                    /* SPC-4 */
        reply[3] = 0x02;                                    /* response data format 2 */
        reply[4] = 31;
        reply[7] = 0x02;                                    /* CMDQUE */
        memcpy(reply + 8, "TSV     ring-ceiling    0001", 28);
        *reply_len = 36;
        return GOOD;
    case 0x25:                                              /* READ CAPACITY (10) */
        be32(reply, blocks - 1 > 0xffffffffu ? 0xffffffffu : (uint32_t)(blocks - 1));
        be32(reply + 4, (uint32_t)block_size);
        *reply_len = 8;
        return GOOD;
    case 0x9e:                                              /* SERVICE ACTION IN (16) */
        if ((cdb[1] & 0x1f) != 0x10) { *asc = 0x24; return CHECK_CONDITION; }
        be64(reply, blocks - 1);                            /* READ CAPACITY (16) */
        be32(reply + 8, (uint32_t)block_size);
        *reply_len = 32;
        return GOOD;
    case 0x1a:                                              /* MODE SENSE (6): header, no pages */
        reply[0] = 3;
        *reply_len = 4;
        return GOOD;
    case 0x5a:                                              /* MODE SENSE (10) */
        reply[1] = 6;
        *reply_len = 8;
        return GOOD;
    default:
        return CHECK_CONDITION;
    }
}

static void serve_entry(uint8_t *entry)
{
    uint32_t iov_cnt = rd32(entry + E_IOV_CNT);
    const uint8_t *cdb_in_ring = map + rd64(entry + E_CDB_OFF);
    uint8_t cdb[16] = {0};
    int cdb_len = cdb_length(cdb_in_ring[0]);
    memcpy(cdb, cdb_in_ring, cdb_len ? cdb_len : 1);

    /* The response overwrites the iovecs (docs/tcmu.md §8): copy what is needed first. */
    struct iovec iov[8];
    int n = iov_cnt < 8 ? (int)iov_cnt : 8;
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = (void *)(uintptr_t)rd64(entry + E_IOV + 16 * i);
        iov[i].iov_len = rd64(entry + E_IOV + 16 * i + 8);
    }

    uint8_t reply[64] = {0}, asc = 0x20;
    uint32_t reply_len = 0;
    uint8_t status = cdb_len ? execute(cdb, reply, &reply_len, &asc) : CHECK_CONDITION;
    uint32_t sent = reply_len ? put_data_in(iov, n, reply, reply_len) : 0;

    memset(entry + R_STATUS, 0, 112 - R_STATUS);
    entry[R_STATUS] = status;
    if (status == CHECK_CONDITION) {
        uint8_t *s = entry + R_SENSE;                       /* fixed format sense */
        s[0] = 0x70; s[2] = ILLEGAL_REQUEST; s[7] = 0x0a; s[12] = asc;
    } else if (sent) {
        /* Only the reply's bytes go back; the rest of the allocation length is residual. */
        entry[E_UFLAGS] |= UFLAG_READ_LEN;
        memcpy(entry + R_READ_LEN, &sent, 4);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s /dev/uioN MAP_SIZE CAPACITY_BYTES BLOCK_SIZE\n", argv[0]);
        return 2;
    }
    size_t map_size = strtoull(argv[2], NULL, 0);
    capacity = strtoull(argv[3], NULL, 0);
    block_size = strtoull(argv[4], NULL, 0);
    if (!map_size || !block_size || capacity < block_size) {
        fprintf(stderr, "tcmu-ring-ceiling: bad size arguments\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (fd < 0) { perror(argv[1]); return 1; }
    map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); return 1; }

    volatile uint32_t *head = (volatile uint32_t *)(map + MB_CMD_HEAD);
    volatile uint32_t *tail = (volatile uint32_t *)(map + MB_CMD_TAIL);
    uint8_t *ring = map + rd32(map + MB_CMDR_OFF);
    uint32_t ring_size = rd32(map + MB_CMDR_SIZE);
    uint32_t next = *tail;   /* parse cursor: nothing of ours is in flight at start */
    fprintf(stderr, "tcmu-ring-ceiling: serving %s, ring %u bytes\n", argv[1], ring_size);

    /* Drain first, then wait: commands queued before open() moved the event counter before
     * this fd existed, so a read would not return for them (docs/tcmu.md §3). */
    for (;;) {
        uint32_t h = __atomic_load_n(head, __ATOMIC_ACQUIRE);
        if (next != h) {
            while (next != h) {
                uint8_t *e = ring + next;
                uint32_t len_op = rd32(e), len = len_op & ~(uint32_t)OP_MASK;
                if (len == 0 || len > ring_size - next) {
                    fprintf(stderr, "tcmu-ring-ceiling: bad entry at %u (len_op %#x)\n", next, len_op);
                    return 1;
                }
                if ((len_op & OP_MASK) == OP_CMD) serve_entry(e);
                next = (next + len) % ring_size;
            }
            __atomic_store_n(tail, next, __ATOMIC_RELEASE);
            uint32_t kick = 1;
            if (write(fd, &kick, 4) != 4 && errno != EINTR) {
                fprintf(stderr, "tcmu-ring-ceiling: kick: %s\n", strerror(errno));
                return 1;
            }
        }
        uint32_t events;
        /* Blocks until the kernel's event counter moves past what this fd last saw. */
        if (read(fd, &events, 4) != 4) {
            if (errno == EINTR) continue;
            fprintf(stderr, "tcmu-ring-ceiling: %s gone (%s)\n", argv[1], strerror(errno));
            return 0;
        }
    }
}
