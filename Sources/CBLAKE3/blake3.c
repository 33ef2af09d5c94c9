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

// The message word schedule of each of the 7 rounds: the permutation
// [2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8] applied round after round.
// Constants, so that each round's message words are fixed registers or
// stack slots rather than looked up.
static const uint8_t SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define UDR_BLAKE3_AVX2 1

// Eight whole chunks at once, one per 32-bit lane of AVX2 registers: the
// same compression function, lane i hashing the chunk at input + 1024 * i
// (chunk counter + i). Used for chunks that are known not to be the last.

#define AVX2_TARGET __attribute__((target("avx2")))

AVX2_TARGET static inline __m256i add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
AVX2_TARGET static inline __m256i xor(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
AVX2_TARGET static inline __m256i rot16(__m256i x) {
    return _mm256_shuffle_epi8(x, _mm256_set_epi8(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2,
                                                  13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2));
}
AVX2_TARGET static inline __m256i rot12(__m256i x) { return _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20)); }
AVX2_TARGET static inline __m256i rot8(__m256i x) {
    return _mm256_shuffle_epi8(x, _mm256_set_epi8(12, 15, 14, 13, 8, 11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1,
                                                  12, 15, 14, 13, 8, 11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1));
}
AVX2_TARGET static inline __m256i rot7(__m256i x) { return _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25)); }

#define G8(a, b, c, d, x, y)              \
    do {                                  \
        v[a] = add(add(v[a], v[b]), (x)); \
        v[d] = rot16(xor(v[d], v[a]));    \
        v[c] = add(v[c], v[d]);           \
        v[b] = rot12(xor(v[b], v[c]));    \
        v[a] = add(add(v[a], v[b]), (y)); \
        v[d] = rot8(xor(v[d], v[a]));     \
        v[c] = add(v[c], v[d]);           \
        v[b] = rot7(xor(v[b], v[c]));     \
    } while (0)

#define ROUND8(r)                                                              \
    do {                                                                       \
        G8(0, 4, 8, 12, m[SCHEDULE[r][0]], m[SCHEDULE[r][1]]);               \
        G8(1, 5, 9, 13, m[SCHEDULE[r][2]], m[SCHEDULE[r][3]]);               \
        G8(2, 6, 10, 14, m[SCHEDULE[r][4]], m[SCHEDULE[r][5]]);              \
        G8(3, 7, 11, 15, m[SCHEDULE[r][6]], m[SCHEDULE[r][7]]);              \
        G8(0, 5, 10, 15, m[SCHEDULE[r][8]], m[SCHEDULE[r][9]]);              \
        G8(1, 6, 11, 12, m[SCHEDULE[r][10]], m[SCHEDULE[r][11]]);            \
        G8(2, 7, 8, 13, m[SCHEDULE[r][12]], m[SCHEDULE[r][13]]);             \
        G8(3, 4, 9, 14, m[SCHEDULE[r][14]], m[SCHEDULE[r][15]]);             \
    } while (0)

// Transposes an 8x8 matrix of 32-bit words held as eight rows.
AVX2_TARGET static inline void transpose8(__m256i v[8]) {
    __m256i ab_0145 = _mm256_unpacklo_epi32(v[0], v[1]);
    __m256i ab_2367 = _mm256_unpackhi_epi32(v[0], v[1]);
    __m256i cd_0145 = _mm256_unpacklo_epi32(v[2], v[3]);
    __m256i cd_2367 = _mm256_unpackhi_epi32(v[2], v[3]);
    __m256i ef_0145 = _mm256_unpacklo_epi32(v[4], v[5]);
    __m256i ef_2367 = _mm256_unpackhi_epi32(v[4], v[5]);
    __m256i gh_0145 = _mm256_unpacklo_epi32(v[6], v[7]);
    __m256i gh_2367 = _mm256_unpackhi_epi32(v[6], v[7]);
    __m256i abcd_04 = _mm256_unpacklo_epi64(ab_0145, cd_0145);
    __m256i abcd_15 = _mm256_unpackhi_epi64(ab_0145, cd_0145);
    __m256i abcd_26 = _mm256_unpacklo_epi64(ab_2367, cd_2367);
    __m256i abcd_37 = _mm256_unpackhi_epi64(ab_2367, cd_2367);
    __m256i efgh_04 = _mm256_unpacklo_epi64(ef_0145, gh_0145);
    __m256i efgh_15 = _mm256_unpackhi_epi64(ef_0145, gh_0145);
    __m256i efgh_26 = _mm256_unpacklo_epi64(ef_2367, gh_2367);
    __m256i efgh_37 = _mm256_unpackhi_epi64(ef_2367, gh_2367);
    v[0] = _mm256_permute2x128_si256(abcd_04, efgh_04, 0x20);
    v[1] = _mm256_permute2x128_si256(abcd_15, efgh_15, 0x20);
    v[2] = _mm256_permute2x128_si256(abcd_26, efgh_26, 0x20);
    v[3] = _mm256_permute2x128_si256(abcd_37, efgh_37, 0x20);
    v[4] = _mm256_permute2x128_si256(abcd_04, efgh_04, 0x31);
    v[5] = _mm256_permute2x128_si256(abcd_15, efgh_15, 0x31);
    v[6] = _mm256_permute2x128_si256(abcd_26, efgh_26, 0x31);
    v[7] = _mm256_permute2x128_si256(abcd_37, efgh_37, 0x31);
}

AVX2_TARGET static void hash8_chunks(const uint8_t *input, const uint32_t key[8], uint64_t counter, uint32_t out[8][8]) {
    __m256i cv[8];
    for (int i = 0; i < 8; i++) cv[i] = _mm256_set1_epi32((int)key[i]);
    uint32_t lo[8], hi[8];
    for (int i = 0; i < 8; i++) {
        lo[i] = (uint32_t)(counter + (uint64_t)i);
        hi[i] = (uint32_t)((counter + (uint64_t)i) >> 32);
    }
    const __m256i counter_lo = _mm256_loadu_si256((const __m256i *)lo);
    const __m256i counter_hi = _mm256_loadu_si256((const __m256i *)hi);
    for (int block = 0; block < 16; block++) {
        // Each lane's block is two rows of eight words; transposed, each
        // register holds one message word of all eight lanes.
        __m256i m[16];
        const uint8_t *base = input + 64 * block;
        for (int lane = 0; lane < 8; lane++) {
            m[lane] = _mm256_loadu_si256((const __m256i *)(base + 1024 * lane));
            m[8 + lane] = _mm256_loadu_si256((const __m256i *)(base + 1024 * lane + 32));
        }
        transpose8(m);
        transpose8(m + 8);
        uint32_t flags = (block == 0 ? CHUNK_START : 0) | (block == 15 ? CHUNK_END : 0);
        __m256i v[16] = {
            cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
            _mm256_set1_epi32((int)IV[0]), _mm256_set1_epi32((int)IV[1]), _mm256_set1_epi32((int)IV[2]), _mm256_set1_epi32((int)IV[3]),
            counter_lo, counter_hi, _mm256_set1_epi32(64), _mm256_set1_epi32((int)flags),
        };
        ROUND8(0);
        ROUND8(1);
        ROUND8(2);
        ROUND8(3);
        ROUND8(4);
        ROUND8(5);
        ROUND8(6);
        for (int i = 0; i < 8; i++) cv[i] = xor(v[i], v[i + 8]);
    }
    transpose8(cv);
    for (int lane = 0; lane < 8; lane++) _mm256_storeu_si256((__m256i *)out[lane], cv[lane]);
}

static int avx2_available(void) {
    static int state = -1;  // -1 unknown, 0 no, 1 yes
    int known = __atomic_load_n(&state, __ATOMIC_RELAXED);
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&state, known, __ATOMIC_RELAXED);
    }
    return known;
}
#endif

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
#ifdef UDR_BLAKE3_AVX2
        // Eight whole chunks at a chunk boundary, with more input after
        // them (so none is the last): all eight in one pass.
        if (chunk_len(self) == 0 && input_len > 8 * 1024 && avx2_available()) {
            uint32_t cvs[8][8];
            hash8_chunks(p, self->key, self->chunk_counter, cvs);
            for (int i = 0; i < 8; i++) push_cv(self, cvs[i], self->chunk_counter + (uint64_t)i + 1);
            chunk_reset(self, self->chunk_counter + 8);
            p += 8 * 1024;
            input_len -= 8 * 1024;
            continue;
        }
#endif
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
