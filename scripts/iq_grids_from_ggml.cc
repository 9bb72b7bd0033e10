// Prints the IQ grids of engine/quant/iq_grids.cpp by dequantizing crafted blocks with
// ggml's own to_float from llama.cpp's prebuilt libggml-base.so (scripts/setup.sh puts
// it in $STRATA_CACHE_DIR/llama-cpp/lib). Every block has scale 1 and all signs
// positive, so each decoded group of 8 (or 4) values is one grid entry, in grid units.
// Not part of the build; run by hand when checking where the tables came from:
//   g++ -O1 -o /tmp/iq_grids scripts/iq_grids_from_ggml.cc -ldl
//   /tmp/iq_grids ~/.cache/strata/llama-cpp/lib/libggml-base.so
// The ggml_type_traits layout below is ggml.h's (name, block size, interleave, type
// size, quantized flag, to_float, from_float_ref); type ids are GGML's enum values.
#include <dlfcn.h>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <vector>
typedef void (*to_float_t)(const void*, float*, int64_t);
struct traits { const char* name; int64_t blck; int64_t inter; size_t size; bool q; to_float_t to_float; void* from; };
typedef const traits* (*get_t)(int);
int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PATH/libggml-base.so\n", argv[0]);
    return 2;
  }
  void* h = dlopen(argv[1], RTLD_NOW);
  if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  auto get = (get_t)dlsym(h, "ggml_get_type_traits");
  float y[256];
  // IQ2_XXS (16): d f16, qs[32] u16 ; per 32-block: u32 idx bytes, u32 signs/scale
  auto dump8 = [&](const char* name, int n, auto fill, int type, double unit, bool sgn) {
    printf("// %s\nconst uint64_t k%s[%d] = {\n", name, name, n);
    std::vector<uint8_t> blk(get(type)->size);
    for (int base = 0; base < n; ) {
      memset(blk.data(), 0, blk.size());
      int got = fill(blk.data(), base);  // returns how many indices were placed (multiple of 4 per 32)
      get(type)->to_float(blk.data(), y, 256);
      for (int k = 0; k < got; ++k) {
        uint64_t v = 0;
        for (int j = 0; j < 8; ++j) {
          double f = y[8 * k + j] / unit;
          if (sgn) f -= 0.125;
          int iv = (int)lround(f);
          if (fabs(f - iv) > 1e-6) { fprintf(stderr, "non-int %s %d %f\n", name, base+k, f); return; }
          v |= (uint64_t)(uint8_t)(int8_t)iv << (8 * j);
        }
        printf("0x%016llx,%s", (unsigned long long)v, ((base + k) % 4 == 3) ? "\n" : " ");
      }
      base += got;
    }
    printf("};\n");
  };
  uint16_t one = 0x3C00;
  // IQ2_XXS: 8 sub-blocks x 4 indices = 32 per block
  dump8("Iq2xxsGrid", 256, [&](uint8_t* b, int base) { memcpy(b, &one, 2);
      for (int s = 0; s < 8; ++s) for (int l = 0; l < 4; ++l) b[2 + 8*s + l] = base + 4*s + l; return 32; }, 16, 0.125, false);
  // IQ2_XS: qs u16 [32], low 9 bits
  dump8("Iq2xsGrid", 512, [&](uint8_t* b, int base) { memcpy(b, &one, 2);
      for (int k = 0; k < 32; ++k) { uint16_t v = base + k; memcpy(b + 2 + 2*k, &v, 2);} return 32; }, 17, 0.125, false);
  // IQ2_S: d, qs[64] (first 32 = low idx bytes, next 32 = signs), qh[8], scales[8]
  dump8("Iq2sGrid", 1024, [&](uint8_t* b, int base) { memcpy(b, &one, 2);
      for (int s = 0; s < 8; ++s) { uint8_t qh = 0; for (int l = 0; l < 4; ++l) { int idx = base + 4*s + l; b[2 + 4*s + l] = idx & 255; qh |= ((idx >> 8) & 3) << (2*l);} b[2 + 64 + s] = qh; } return 32; }, 22, 0.125, false);
  // IQ1_S: d, qs[32], qh u16[8]; dl = d*(2*((qh>>12)&7)+1) = 1; delta +0.125 (bit15 = 0)
  dump8("Iq1sGrid", 2048, [&](uint8_t* b, int base) { memcpy(b, &one, 2);
      for (int s = 0; s < 8; ++s) { uint16_t qh = 0; for (int l = 0; l < 4; ++l) { int idx = base + 4*s + l; b[2 + 4*s + l] = idx & 255; qh |= ((idx >> 8) & 7) << (3*l);} memcpy(b + 34 + 2*s, &qh, 2);} return 32; }, 19, 1.0, true);
  // 4-wide grids: IQ3_XXS: d, qs[96]: 64 idx bytes then 32 bytes scales/signs ; db = 0.25
  auto dump4 = [&](const char* name, int n, auto fill, int type, double unit) {
    printf("// %s\nconst uint32_t k%s[%d] = {\n", name, name, n);
    std::vector<uint8_t> blk(get(type)->size);
    for (int base = 0; base < n; base += 64) {
      memset(blk.data(), 0, blk.size()); fill(blk.data(), base);
      get(type)->to_float(blk.data(), y, 256);
      for (int k = 0; k < 64; ++k) { uint32_t v = 0; for (int j = 0; j < 4; ++j) { double f = y[4*k+j]/unit; int iv = lround(f); if (fabs(f-iv)>1e-6) {fprintf(stderr,"nonint\n");} v |= (uint32_t)(uint8_t)iv << (8*j);} printf("0x%08x,%s", v, (base+k)%8==7?"\n":" "); }
    }
    printf("};\n");
  };
  dump4("Iq3xxsGrid", 256, [&](uint8_t* b, int base) { memcpy(b, &one, 2); for (int k = 0; k < 64; ++k) b[2 + k] = base + k; }, 18, 0.25);
  // IQ3_S: d, qs[64], qh[8], signs[32], scales[4]; db = d*(1+2*0) = 1. idx of qs[2l+0] in 32-block: qs | ((qh<<(8-2l))&256); qs[2l+1]: (qh<<(7-2l))&256
  dump4("Iq3sGrid", 512, [&](uint8_t* b, int base) { memcpy(b, &one, 2);
      for (int s = 0; s < 8; ++s) { uint8_t qh = 0; for (int k = 0; k < 8; ++k) { int idx = base + 8*s + k; b[2 + 8*s + k] = idx & 255; qh |= ((idx >> 8) & 1) << k; } b[2 + 64 + s] = qh; } }, 21, 1.0);
  return 0;
}
