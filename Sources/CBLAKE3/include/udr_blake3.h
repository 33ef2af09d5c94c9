// BLAKE3 (https://github.com/BLAKE3-team/BLAKE3-specs), 256-bit output,
// hash mode only. A portable implementation written for UDR's object ids.
#ifndef UDR_BLAKE3_H
#define UDR_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t key[8];
    // Current chunk.
    uint32_t cv[8];
    uint64_t chunk_counter;
    uint8_t block[64];
    uint8_t block_len;
    uint8_t blocks_compressed;
    // Chaining values of completed subtrees, one per level.
    uint32_t cv_stack[54][8];
    uint8_t cv_stack_len;
} udr_blake3_hasher;

void udr_blake3_init(udr_blake3_hasher *self);
void udr_blake3_update(udr_blake3_hasher *self, const void *input, size_t input_len);
void udr_blake3_finalize(const udr_blake3_hasher *self, uint8_t out[32]);
void udr_blake3_hash(const void *input, size_t input_len, uint8_t out[32]);

#endif
