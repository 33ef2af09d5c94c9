#include "udr_blake3.h"
#include <string.h>

enum {
    CHUNK_START = 1 << 0,
    CHUNK_END = 1 << 1,
    PARENT = 1 << 2,
    ROOT = 1 << 3,
};

static const uint32_t IV[8] = {
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

// The message word schedule of each of the 7 rounds, precomputed from the
// permutation [2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8] applied round after round.
static uint8_t SCHEDULE[7][16];
static int schedule_ready = 0;

static void init_schedule(void) {
    static const uint8_t permutation[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};
    uint8_t current[16];
    for (int i = 0; i < 16; i++) current[i] = (uint8_t)i;
    for (int r = 0; r < 7; r++) {
        memcpy(SCHEDULE[r], current, 16);
        uint8_t next[16];
        for (int i = 0; i < 16; i++) next[i] = current[permutation[i]];
        memcpy(current, next, 16);
    }
    __atomic_store_n(&schedule_ready, 1, __ATOMIC_RELEASE);
}

static inline uint32_t rotr(uint32_t w, int c) { return (w >> c) | (w << (32 - c)); }

static inline uint32_t load32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#define G(a, b, c, d, x, y)              \
    do {                                 \
        s[a] = s[a] + s[b] + (x);        \
        s[d] = rotr(s[d] ^ s[a], 16);    \
        s[c] = s[c] + s[d];              \
        s[b] = rotr(s[b] ^ s[c], 12);    \
        s[a] = s[a] + s[b] + (y);        \
        s[d] = rotr(s[d] ^ s[a], 8);     \
        s[c] = s[c] + s[d];              \
        s[b] = rotr(s[b] ^ s[c], 7);     \
    } while (0)

static void compress(const uint32_t cv[8], const uint8_t block[64], uint8_t block_len,
                     uint64_t counter, uint8_t flags, uint32_t out[16]) {
    if (!__atomic_load_n(&schedule_ready, __ATOMIC_ACQUIRE)) init_schedule();
    uint32_t m[16];
    for (int i = 0; i < 16; i++) m[i] = load32(block + 4 * i);
    uint32_t s[16] = {
        cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
        IV[0], IV[1], IV[2], IV[3],
        (uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)block_len, (uint32_t)flags,
    };
    for (int r = 0; r < 7; r++) {
        const uint8_t *k = SCHEDULE[r];
        G(0, 4, 8, 12, m[k[0]], m[k[1]]);
        G(1, 5, 9, 13, m[k[2]], m[k[3]]);
        G(2, 6, 10, 14, m[k[4]], m[k[5]]);
        G(3, 7, 11, 15, m[k[6]], m[k[7]]);
        G(0, 5, 10, 15, m[k[8]], m[k[9]]);
        G(1, 6, 11, 12, m[k[10]], m[k[11]]);
        G(2, 7, 8, 13, m[k[12]], m[k[13]]);
        G(3, 4, 9, 14, m[k[14]], m[k[15]]);
    }
    for (int i = 0; i < 8; i++) {
        out[i] = s[i] ^ s[i + 8];
        out[i + 8] = s[i + 8] ^ cv[i];
    }
}

static void chunk_reset(udr_blake3_hasher *self, uint64_t counter) {
    memcpy(self->cv, self->key, 32);
    self->chunk_counter = counter;
    memset(self->block, 0, 64);
    self->block_len = 0;
    self->blocks_compressed = 0;
}

static size_t chunk_len(const udr_blake3_hasher *self) {
    return 64 * (size_t)self->blocks_compressed + self->block_len;
}

static uint8_t chunk_start_flag(const udr_blake3_hasher *self) {
    return self->blocks_compressed == 0 ? CHUNK_START : 0;
}

// Input of the last, not yet compressed block of a node.
typedef struct {
    uint32_t cv[8];
    uint8_t block[64];
    uint8_t block_len;
    uint64_t counter;
    uint8_t flags;
} output_t;

static void output_chaining_value(const output_t *o, uint32_t cv[8]) {
    uint32_t out[16];
    compress(o->cv, o->block, o->block_len, o->counter, o->flags, out);
    memcpy(cv, out, 32);
}

static output_t chunk_output(const udr_blake3_hasher *self) {
    output_t o;
    memcpy(o.cv, self->cv, 32);
    memcpy(o.block, self->block, 64);
    o.block_len = self->block_len;
    o.counter = self->chunk_counter;
    o.flags = chunk_start_flag(self) | CHUNK_END;
    return o;
}

static output_t parent_output(const uint32_t left[8], const uint32_t right[8], const uint32_t key[8]) {
    output_t o;
    memcpy(o.cv, key, 32);
    for (int i = 0; i < 8; i++) {
        uint32_t w = left[i];
        o.block[4 * i + 0] = (uint8_t)w;
        o.block[4 * i + 1] = (uint8_t)(w >> 8);
        o.block[4 * i + 2] = (uint8_t)(w >> 16);
        o.block[4 * i + 3] = (uint8_t)(w >> 24);
    }
    for (int i = 0; i < 8; i++) {
        uint32_t w = right[i];
        o.block[32 + 4 * i + 0] = (uint8_t)w;
        o.block[32 + 4 * i + 1] = (uint8_t)(w >> 8);
        o.block[32 + 4 * i + 2] = (uint8_t)(w >> 16);
        o.block[32 + 4 * i + 3] = (uint8_t)(w >> 24);
    }
    o.block_len = 64;
    o.counter = 0;
    o.flags = PARENT;
    return o;
}

static void chunk_update(udr_blake3_hasher *self, const uint8_t *input, size_t len) {
    while (len > 0) {
        if (self->block_len == 64) {
            uint32_t out[16];
            compress(self->cv, self->block, 64, self->chunk_counter, chunk_start_flag(self), out);
            memcpy(self->cv, out, 32);
            self->blocks_compressed++;
            memset(self->block, 0, 64);
            self->block_len = 0;
        }
        size_t take = 64 - (size_t)self->block_len;
        if (take > len) take = len;
        memcpy(self->block + self->block_len, input, take);
        self->block_len += (uint8_t)take;
        input += take;
        len -= take;
    }
}

static void push_cv(udr_blake3_hasher *self, uint32_t new_cv[8], uint64_t total_chunks) {
    // Merge completed subtrees: one merge per trailing zero bit of the
    // number of chunks so far.
    while ((total_chunks & 1) == 0) {
        self->cv_stack_len--;
        output_t parent = parent_output(self->cv_stack[self->cv_stack_len], new_cv, self->key);
        output_chaining_value(&parent, new_cv);
        total_chunks >>= 1;
    }
    memcpy(self->cv_stack[self->cv_stack_len], new_cv, 32);
    self->cv_stack_len++;
}

void udr_blake3_init(udr_blake3_hasher *self) {
    memcpy(self->key, IV, 32);
    self->cv_stack_len = 0;
    chunk_reset(self, 0);
}

void udr_blake3_update(udr_blake3_hasher *self, const void *input, size_t input_len) {
    const uint8_t *p = (const uint8_t *)input;
    while (input_len > 0) {
        // A full chunk is finalized only once more input follows: the last
        // chunk may be the root.
        if (chunk_len(self) == 1024) {
            output_t o = chunk_output(self);
            uint32_t cv[8];
            output_chaining_value(&o, cv);
            uint64_t total = self->chunk_counter + 1;
            push_cv(self, cv, total);
            chunk_reset(self, total);
        }
        size_t want = 1024 - chunk_len(self);
        if (want > input_len) want = input_len;
        chunk_update(self, p, want);
        p += want;
        input_len -= want;
    }
}

void udr_blake3_finalize(const udr_blake3_hasher *self, uint8_t out[32]) {
    output_t o = chunk_output(self);
    size_t remaining = self->cv_stack_len;
    while (remaining > 0) {
        remaining--;
        uint32_t right[8];
        output_chaining_value(&o, right);
        o = parent_output(self->cv_stack[remaining], right, self->key);
    }
    uint32_t words[16];
    compress(o.cv, o.block, o.block_len, o.counter, o.flags | ROOT, words);
    for (int i = 0; i < 8; i++) {
        out[4 * i + 0] = (uint8_t)words[i];
        out[4 * i + 1] = (uint8_t)(words[i] >> 8);
        out[4 * i + 2] = (uint8_t)(words[i] >> 16);
        out[4 * i + 3] = (uint8_t)(words[i] >> 24);
    }
}

void udr_blake3_hash(const void *input, size_t input_len, uint8_t out[32]) {
    udr_blake3_hasher h;
    udr_blake3_init(&h);
    udr_blake3_update(&h, input, input_len);
    udr_blake3_finalize(&h, out);
}
