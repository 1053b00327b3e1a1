/* A libFuzzer-free fuzz loop for fuzz_safetensors.c, run by meson in every build
 * (and under ASan + UBSan in CI): the seeds below, then a fixed number of
 * deterministic mutations of them (bit flips, structural bytes, truncations,
 * duplicated chunks, header-length edits, digits).
 * usage: fuzz_safetensors_mutate [ITERATIONS] */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seeds: small valid files of every dtype, metadata, counters, and tensors the
 * backbone knows (so the load path past parsing is reached too). */
static const char *const seeds[] = {
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
    "\"c\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[22,24]},"
    "\"d\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[24,32]}}",
    "{\"projector.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
    "\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]},"
    "\"bn1.weight\":{\"dtype\":\"F64\",\"shape\":[64],\"data_offsets\":[24,536]}}",
    "{\"x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
    "\"y\":{\"dtype\":\"I32\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
    "{}",
};

static size_t seed_file(const char *json, unsigned char *buf, size_t cap) {
  size_t hl = strlen(json), data = 0;
  /* data size: the largest end offset in the text (good enough for the seeds) */
  for (const char *p = json; (p = strstr(p, "\"data_offsets\":[")) != NULL;) {
    p += 16;
    const char *comma = strchr(p, ',');
    size_t end = comma ? (size_t)strtoull(comma + 1, NULL, 10) : 0;
    if (end > data) data = end;
  }
  size_t size = 8 + hl + data;
  if (size > cap) abort();
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, json, hl);
  for (size_t i = 0; i < data; i++) buf[8 + hl + i] = (unsigned char)(i * 131 + 7);
  return size;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

int main(int argc, char **argv) {
  long iterations = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
  enum { CAP = 4096 };
  unsigned char base[CAP], buf[CAP];
  size_t nseeds = sizeof seeds / sizeof seeds[0];
  for (size_t s = 0; s < nseeds; s++) {
    size_t n = seed_file(seeds[s], base, CAP);
    LLVMFuzzerTestOneInput(base, n);
  }
  for (long it = 0; it < iterations; it++) {
    size_t n = seed_file(seeds[next() % nseeds], base, CAP);
    memcpy(buf, base, n);
    int edits = 1 + (int)(next() % 4);
    for (int e = 0; e < edits; e++) {
      size_t at = n ? next() % n : 0;
      switch (next() % 6) {
        case 0: if (n) buf[at] ^= (unsigned char)(1u << (next() % 8)); break;
        case 1: if (n) buf[at] = "{}[],:\"0-9e. \x00\xff"[next() % 16]; break;
        case 2: n = at; break; /* truncate */
        case 3: { /* header length edit */
          uint64_t v = next() % 3 == 0 ? next() : (uint64_t)(next() % (n + 16));
          for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(v >> (8 * i));
          break;
        }
        case 4: if (n + 8 < CAP) { /* duplicate a chunk */
          size_t len = 1 + next() % 8;
          if (at + len > n) len = n - at;
          memmove(buf + at + len, buf + at, n - at);
          n += len;
        } break;
        case 5: if (n) { /* digits into numbers */
          buf[at] = (unsigned char)('0' + next() % 10);
        } break;
      }
    }
    LLVMFuzzerTestOneInput(buf, n);
  }
  printf("fuzz_safetensors: %ld mutated inputs, no crash\n", iterations);
  return 0;
}
